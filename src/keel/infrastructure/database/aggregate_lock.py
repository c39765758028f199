"""Aggregate-wide optimistic locking: a change anywhere inside an aggregate bumps its root's version.

SQLAlchemy's version counter covers one row: it is checked and raised only
when that row's own columns change. An aggregate is more than its root's
row, so two units of work that each append a booking to the same event (or
change or remove one) would both commit. A ``before_flush`` listener closes
that gap: for every new, changed or deleted object that belongs to a
versioned :class:`~keel.domain.aggregate.AggregateRoot`, it sets the root's
version to the next one, so the flush emits ``UPDATE ... SET version = v + 1
WHERE ... AND version = v`` and a concurrent writer of the same aggregate
gets :class:`keel.ConcurrencyError`.

What belongs to an aggregate (decided once per mapper, see :func:`plan_of`):

- objects reachable from the root through one-to-many or many-to-many
  relationships that cascade saves (SQLAlchemy's default cascade), level by
  level, stopping at other aggregate roots;
- a relationship declared with ``info={"keel": "aggregate"}``: on a
  collection, its members are parts of the owner; on a many-to-one, the
  object it is on belongs to the aggregate of the object it points to;
- ``info={"keel": "reference"}`` takes a cascading collection out.

One version per flush: a root whose version was already changed in this
flush (by its own column change, a hand-written bump, or another of its
parts) is not bumped again. New roots start at 1, whatever their children.
Mappers outside any aggregate cost a dictionary look-up per flushed object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Mapper, RelationshipDirection, RelationshipProperty, Session, UOWTransaction
from sqlalchemy.orm.attributes import get_history, instance_state
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE, LoaderCallableStatus
from sqlalchemy.orm.state import InstanceState

from keel.domain.aggregate import AggregateRoot
from keel.infrastructure.database._keel_session import is_keel_session
from keel.infrastructure.database.orm import AGGREGATE, REFERENCE

_NO_KEYS: tuple[tuple[str, str], ...] = ()
#: keel.infrastructure.repository.soft_delete.INCLUDE_DELETED (the repository layer builds on this one).
_INCLUDE_DELETED = "include_deleted"


@dataclass(frozen=True, slots=True)
class Edge:
    """One step from an object of an aggregate up to the object that holds it."""

    #: The mapper of the holding object.
    parent: Mapper[Any]
    #: The attribute of the holder that contains the object (a collection or a scalar), if any.
    holder: str | None
    #: The many-to-one attribute of the object naming its holder, if any.
    owner: str | None
    #: (holder's primary-key attribute, object's attribute) pairs: find an unloaded holder by key.
    keys: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class AggregatePlan:
    """How objects of one mapper take part in aggregate locking."""

    #: A versioned aggregate root (bumped when reached).
    root: bool
    #: The attributes of this mapper holding parts of its aggregate.
    parts: tuple[str, ...]
    #: Steps up towards the root, for objects that are parts.
    edges: tuple[Edge, ...]


_PLANS: dict[Mapper[Any], AggregatePlan | None] = {}
#: ``session.info`` key: (table, entity, identity, held version) of the roots the last flush bumped.
_BUMPED = "keel.bumped_roots"


@event.listens_for(Mapper, "after_configured")
def _forget_plans() -> None:
    # New mappers (or relationships) may add parts to an aggregate.
    _PLANS.clear()


def plan_of(mapper: Mapper[Any]) -> AggregatePlan | None:
    """The locking plan of ``mapper``, or None when no aggregate root is reachable from or through it."""
    try:
        return _PLANS[mapper]
    except KeyError:
        pass
    plans = _build_plans(mapper)
    _PLANS.update(plans)
    return plans.get(mapper)


def is_part(rel: RelationshipProperty[Any]) -> bool:
    """Whether ``rel`` (a root's or a part's collection) holds parts of the same aggregate."""
    role = rel.info.get("keel")
    if role == REFERENCE:
        return False
    if role == AGGREGATE:
        return rel.direction is not RelationshipDirection.MANYTOONE
    if rel.direction is RelationshipDirection.MANYTOONE or issubclass(rel.mapper.class_, AggregateRoot):
        return False
    return bool(rel.cascade.save_update)


def _is_owner(rel: RelationshipProperty[Any]) -> bool:
    return rel.direction is RelationshipDirection.MANYTOONE and rel.info.get("keel") == AGGREGATE


def _build_plans(mapper: Mapper[Any]) -> dict[Mapper[Any], AggregatePlan | None]:
    mappers = set(mapper.registry.mappers) | {mapper}
    edges: dict[Mapper[Any], list[Edge]] = {m: [] for m in mappers}
    parts: dict[Mapper[Any], list[str]] = {m: [] for m in mappers}
    for parent in mappers:
        for rel in parent.relationships:
            if rel.parent is not parent:
                continue  # inherited: handled on the mapper that declares it
            if is_part(rel):
                parts[parent].append(rel.key)
                edge = Edge(parent, rel.key, _reverse_owner(rel), _holder_keys(rel))
                for target in rel.mapper.self_and_descendants:
                    edges.setdefault(target, []).append(edge)
            elif _is_owner(rel):
                edge = Edge(rel.mapper, None, rel.key, _owner_keys(rel))
                for target in parent.self_and_descendants:
                    edges.setdefault(target, []).append(edge)
    for m in list(edges):
        for base in m.iterate_to_root():
            if base is not m:
                parts.setdefault(m, []).extend(parts.get(base, ()))
    holders = {edge.parent for found in edges.values() for edge in found}
    plans: dict[Mapper[Any], AggregatePlan | None] = {}
    for m, own in edges.items():
        root = issubclass(m.class_, AggregateRoot) and m.version_id_col is not None and m.version_id_generator
        plan = AggregatePlan(bool(root), tuple(parts.get(m, ())), tuple(own))
        has_parts = bool(plan.parts) or any(m.isa(holder) for holder in holders)
        plans[m] = plan if (plan.root and has_parts) or (own and _reaches_root(m, edges, set())) else None
    return plans


def _reaches_root(mapper: Mapper[Any], edges: dict[Mapper[Any], list[Edge]], visiting: set[Mapper[Any]]) -> bool:
    if mapper in visiting:
        return False
    visiting.add(mapper)
    for edge in edges.get(mapper, ()):
        parent = edge.parent
        if issubclass(parent.class_, AggregateRoot) and parent.version_id_col is not None:
            return True
        if _reaches_root(parent, edges, visiting):
            return True
    return False


def _reverse_owner(rel: RelationshipProperty[Any]) -> str | None:
    for reverse in rel._reverse_property:
        if reverse.direction is RelationshipDirection.MANYTOONE:
            return reverse.key
    return None


def _holder_keys(rel: RelationshipProperty[Any]) -> tuple[tuple[str, str], ...]:
    """For a one-to-many: the child's foreign-key attributes that name the holder's primary key."""
    if rel.direction is not RelationshipDirection.ONETOMANY:
        return _NO_KEYS
    return _key_pairs(rel.parent, rel.mapper, [(local, remote) for local, remote in rel.local_remote_pairs])


def _owner_keys(rel: RelationshipProperty[Any]) -> tuple[tuple[str, str], ...]:
    """For a many-to-one owner: the object's foreign-key attributes that name the owner's primary key."""
    return _key_pairs(rel.mapper, rel.parent, [(remote, local) for local, remote in rel.local_remote_pairs])


def _key_pairs(holder: Mapper[Any], child: Mapper[Any], pairs: list[tuple[Any, Any]]) -> tuple[tuple[str, str], ...]:
    by_column = dict(pairs)
    try:
        return tuple(
            (holder.get_property_by_column(pk).key, child.get_property_by_column(by_column[pk]).key)
            for pk in holder.primary_key
        )
    except Exception:  # noqa: BLE001 -- a join keel cannot express as the holder's primary key: scan the session only
        return _NO_KEYS


# --- the flush ----------------------------------------------------------------------


def lock_aggregates(session: Session, _flush_context: UOWTransaction, _instances: Any) -> None:
    """``before_flush`` (see ``database.listeners``): bump and check the roots the flush reaches."""
    if not is_keel_session(session):
        return
    if _BUMPED in session.info:
        del session.info[_BUMPED]
    # The session's own pending, modified and deleted states, rather than its
    # public ``new``/``dirty``/``deleted``: those build three identity sets per
    # flush, most of this listener's cost for a flush with nothing to do.
    deleted = session._deleted
    changed: list[tuple[InstanceState[Any], AggregatePlan]] = []
    for state in chain(session._new, session.identity_map._modified, deleted):
        plan = plan_of(state.mapper)
        if plan is not None:
            changed.append((state, plan))
    if not changed:
        return
    finder = _Holders(session)
    roots: dict[int, InstanceState[Any]] = {}
    for state, plan in changed:
        is_dirty = state.key is not None and state not in deleted
        if plan.root:
            # Its own columns are SQLAlchemy's to version; a new root starts at
            # version 1 and a deleted one is checked by its own DELETE.
            if is_dirty and _parts_changed(state, plan.parts):
                roots[id(state)] = state
            continue
        if is_dirty and not session.is_modified(state.obj()):
            continue  # touched, but nothing to write
        for root in finder.roots_of(state, plan):
            roots.setdefault(id(root), root)
    for root in roots.values():
        if root.key is not None and root not in deleted and root.obj() is not None:
            _bump(session, root)


def _parts_changed(state: InstanceState[Any], parts: tuple[str, ...]) -> bool:
    obj = state.obj()
    return any(
        key in state.committed_state and get_history(obj, key, passive=PASSIVE_NO_INITIALIZE).has_changes()
        for key in parts
    )


def bumped_roots(session: Session) -> list[tuple[str, str, Any, Any]]:
    """(table, entity, identity, held version) of each root the last flush bumped for its parts.

    Lets a ``StaleDataError`` on such a root's UPDATE name it: the root had
    no changes of its own before the flush.
    """
    return list(session.info.get(_BUMPED, ()))


def _bump(session: Session, state: InstanceState[Any]) -> None:
    mapper = state.mapper
    column = mapper.version_id_col
    generator = mapper.version_id_generator
    if column is None or not generator:
        return
    key = mapper.get_property_by_column(column).key
    if key in state.committed_state:
        return  # already changed in this flush: one version per flush
    obj = state.obj()
    held = getattr(obj, key)
    identity = state.identity[0] if state.identity and len(state.identity) == 1 else state.identity
    bumped = session.info.setdefault(_BUMPED, [])
    bumped.extend((table.name, type(obj).__name__, identity, held) for table in mapper.tables)
    # Setting the attribute makes SQLAlchemy write exactly this value and check
    # the committed one in the WHERE clause (flag_modified would write the old
    # value back, which a concurrent writer's UPDATE would still match).
    setattr(obj, key, generator(held))


class _Holders:
    """Finds, within one flush, the objects holding a part, up to its root."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._index: dict[tuple[Mapper[Any], str], dict[int, list[InstanceState[Any]]]] = {}
        #: Holders found: the identity map holds unchanged objects weakly, and nothing else might until the bump.
        self.loaded: list[Any] = []

    def roots_of(self, state: InstanceState[Any], plan: AggregatePlan) -> Iterator[InstanceState[Any]]:
        seen: set[int] = set()
        pending = [(state, plan)]
        while pending:
            current, current_plan = pending.pop()
            for edge in current_plan.edges:
                for holder in self._holders(current, edge):
                    if id(holder) in seen:
                        continue
                    seen.add(id(holder))
                    holder_plan = plan_of(holder.mapper)
                    if holder_plan is None:
                        continue
                    if holder_plan.root:
                        yield holder
                    else:
                        pending.append((holder, holder_plan))

    def _holders(self, state: InstanceState[Any], edge: Edge) -> list[InstanceState[Any]]:
        if edge.owner is not None and edge.owner in state.dict:
            # The many-to-one side, loaded: its value now and before (a part moved or removed).
            found = [instance_state(o) for o in _values(state, edge.owner) if o is not None]
            if found:
                return found
        if edge.holder is not None:
            found = self._index_of(edge).get(id(state), [])
            if found:
                return found
        return self._load_by_key(state, edge)

    def _index_of(self, edge: Edge) -> dict[int, list[InstanceState[Any]]]:
        assert edge.holder is not None
        index = self._index.get((edge.parent, edge.holder))
        if index is None:
            index = self._index[(edge.parent, edge.holder)] = {}
            cls = edge.parent.class_
            for obj in chain(self.session.identity_map.values(), self.session.new):
                if isinstance(obj, cls):
                    holder = instance_state(obj)
                    for member in _values(holder, edge.holder):
                        if member is not None:
                            index.setdefault(id(instance_state(member)), []).append(holder)
                            self.loaded.append(obj)
        return index

    def _load_by_key(self, state: InstanceState[Any], edge: Edge) -> list[InstanceState[Any]]:
        if not edge.keys:
            return []
        found = []
        # The holder now and, for a part moved to another holder, the one it had.
        for source in (state.dict, state.committed_state):
            values = [source.get(attr) for _, attr in edge.keys]
            if any(value is None or isinstance(value, LoaderCallableStatus) for value in values):
                continue
            identity = values[0] if len(values) == 1 else tuple(values)
            # Not in the session: load it (autoflush is off during a flush).
            holder = self.session.get(edge.parent.class_, identity, execution_options={_INCLUDE_DELETED: True})
            if holder is not None:
                self.loaded.append(holder)
                found.append(instance_state(holder))
        return found


def _values(state: InstanceState[Any], key: str) -> Iterable[Any]:
    """An attribute's members now and as committed, without loading anything."""
    history = get_history(state.obj(), key, passive=PASSIVE_NO_INITIALIZE)
    return chain(history.added or (), history.unchanged or (), history.deleted or ())
