"""The in-memory "database" behind :class:`InMemoryUnitOfWork`.

:class:`InMemoryStore` holds committed rows as private copies, so nothing a
test does to an entity it holds changes the store until a unit of work
commits it, just as with a real database. A :class:`Workspace` is one unit
of work's transaction: it hands out copies (one per row, an identity map),
sees its own uncommitted changes, and on commit applies them atomically,
with the same optimistic version check, ``version`` bump and timestamps as
the SQLAlchemy unit of work.

Share one store between several unit-of-work instances (a message bus's
``uow_factory``) to give them the same data.
"""

from __future__ import annotations

import copy
import itertools
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Mapper

from keel.cross_cutting.error import ConcurrencyError, ConfigurationError, ConflictError
from keel.domain.messages import utcnow
from keel.infrastructure.database._integrity import duplicate_key_error
from keel.infrastructure.database._translate import attached_elsewhere, pending_rollback_error
from keel.infrastructure.database.aggregate_lock import plan_of
from keel.infrastructure.database.orm import ModelTraits, model_traits
from keel.infrastructure.database.values import check_entity_values

Key = tuple[Any, ...]
RowId = tuple[type[Any], Key]

#: Set on entities a workspace handed out or committed: the version they
#: were read at. Lets a copy from an earlier unit of work be re-added and
#: saved with a version check, like a detached instance in SQLAlchemy.
_READ_AT = "_keel_in_memory_read_at"
#: Set on entities a workspace handed out or was given: a weak reference to it, so
#: another open workspace refuses them as a session refuses another session's objects.
_OWNER = "_keel_in_memory_owner"
_MISSING = object()


def mapper_of(model: type[Any]) -> Mapper[Any]:
    """The mapper of ``model``; a clear error when the class is not mapped yet."""
    try:
        mapper: Mapper[Any] = inspect(model)
    except Exception as exc:
        raise ConfigurationError(
            f"{getattr(model, '__name__', model)} is not mapped: the in-memory repository reads the same "
            "column metadata as the SQL one, so import the module that maps it (declarative models, or "
            "your map_imperatively/start_mappers call) before using it"
        ) from exc
    return mapper


def identity_of(model: type[Any], entity: object) -> Key:
    return tuple(getattr(entity, name) for name in model_traits(model).primary_key)


def state_of(entity: object, depth: int = 0) -> Any:
    """A comparable snapshot of an entity's columns and, recursively, its relationships."""
    try:
        mapper: Mapper[Any] = inspect(type(entity))
    except NoInspectionAvailable:
        return copy.deepcopy(entity)
    columns = tuple((key, copy.deepcopy(entity.__dict__.get(key))) for key in [p.key for p in mapper.column_attrs])
    if depth > 8:
        return columns
    related: list[tuple[str, Any]] = []
    for rel in mapper.relationships:
        value = entity.__dict__.get(rel.key)
        if value is None:
            related.append((rel.key, None))
        elif isinstance(value, list | tuple):
            related.append((rel.key, tuple(state_of(v, depth + 1) for v in value)))
        elif isinstance(value, set | frozenset):
            related.append((rel.key, tuple(sorted((state_of(v, depth + 1) for v in value), key=repr))))
        else:
            related.append((rel.key, state_of(value, depth + 1)))
    return columns, tuple(related)


@dataclass(slots=True)
class _Baseline:
    #: The committed version this workspace read (what the version check expects).
    version: Any
    #: The state last written within this workspace (at load, by a flush or a set-based change).
    state: Any
    #: Something was written since the load: the row must be written on commit.
    flushed: bool = False
    #: The row was inserted by a flush in this workspace (it is not in the store yet).
    inserted: bool = False


class InMemoryStore:
    """Committed rows of every model, keyed by primary key, in insertion order."""

    def __init__(self) -> None:
        self._tables: dict[type[Any], dict[Key, Any]] = {}
        self._sequences: dict[type[Any], Iterator[int]] = {}
        #: How many unit-of-work commits reached this store.
        self.commits = 0

    def table(self, model: type[Any]) -> dict[Key, Any]:
        """The committed rows of ``model`` (private copies: read, never mutate)."""
        return self._tables.setdefault(model, {})

    def all(self, model: type[Any]) -> list[Any]:
        """Copies of every committed row of ``model``, soft-deleted ones included."""
        return [copy.deepcopy(row) for row in self.table(model).values()]

    def add(self, *entities: Any) -> None:
        """Seed committed rows directly (test setup), with defaults applied."""
        workspace = Workspace(self)
        for entity in entities:
            workspace.add(type(entity), entity)
        workspace.commit()
        workspace.close()

    def clear(self) -> None:
        self._tables.clear()

    def next_id(self, model: type[Any]) -> int:
        """The next value of ``model``'s integer key: never reused, never rolled back."""
        sequence = self._sequences.get(model)
        if sequence is None:
            start = max((k[0] for k in self.table(model) if isinstance(k[0], int)), default=0) + 1
            sequence = self._sequences[model] = itertools.count(start)
        return next(sequence)


class Workspace:
    """One unit of work's view of a store: an identity map plus pending changes."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.identity: dict[RowId, Any] = {}
        self._baselines: dict[RowId, _Baseline] = {}
        self._removed: dict[RowId, Any] = {}
        #: A flush or commit failed: as with a session after a failed flush, only a rollback helps.
        self.failed = False
        self.closed = False
        #: Rows a set-based write changed while this workspace held a stale
        #: copy of them: (the row as written, the committed version it was written over).
        self._set_rows: dict[RowId, tuple[Any, Any]] = {}
        #: Rows deleted by a set-based DELETE: the committed version they were deleted at.
        self._set_deleted: dict[RowId, Any] = {}

    def reset(self) -> None:
        """Forget everything uncommitted (a rollback)."""
        self.identity.clear()
        self._baselines.clear()
        self._removed.clear()
        self._set_rows.clear()
        self._set_deleted.clear()
        self.failed = False

    def close(self) -> None:
        """The unit of work ended: its entities may join another one."""
        self.closed = True

    def _require_usable(self) -> None:
        if self.failed:
            raise pending_rollback_error()

    def _claim(self, entity: Any, entity_name: str) -> None:
        """Make ``entity`` this workspace's; refuse one that another open workspace holds."""
        owner_ref = entity.__dict__.get(_OWNER)
        owner = owner_ref() if owner_ref is not None else None
        if owner is not None and owner is not self and not owner.closed:
            raise attached_elsewhere(entity_name)
        entity.__dict__[_OWNER] = weakref.ref(self)

    # --- reading ---------------------------------------------------------------

    def keys(self, model: type[Any]) -> list[Key]:
        """Every live key of ``model`` in this workspace, committed rows first."""
        table = self.store.table(model)
        keys = [k for k in table if (model, k) not in self._removed]
        keys.extend(k for (m, k) in self.identity if m is model and k not in table)
        return keys

    def peek(self, model: type[Any], key: Key) -> Any:
        """The row as this workspace sees it, without copying it (None if absent)."""
        row_id = (model, key)
        if row_id in self._removed:
            return None
        found = self.identity.get(row_id)
        return found if found is not None else self.store.table(model).get(key)

    def load(self, model: type[Any], key: Key) -> Any:
        """The workspace's own copy of the row (one per key), or None."""
        row_id = (model, key)
        if row_id in self._removed:
            return None
        found = self.identity.get(row_id)
        if found is not None:
            if self.failed and row_id not in self._baselines:
                # Never flushed, so not in a session's identity map: SQL would query, and fail.
                raise pending_rollback_error()
            return found
        committed = self.store.table(model).get(key)
        if committed is None:
            return None
        entity = copy.deepcopy(committed)
        version = _version(model, entity)
        entity.__dict__[_READ_AT] = version
        entity.__dict__[_OWNER] = weakref.ref(self)
        self.identity[row_id] = entity
        self._baselines[row_id] = _Baseline(version, state_of(entity))
        return entity

    def current(self, model: type[Any], key: Key) -> Any:
        """The row as a statement in this transaction sees it (None if absent), without copying it.

        Rows this workspace wrote are its copies; a row it only read is the
        committed row, which differs from the copy handed out when someone
        else has changed it since. Set-based writes match and change this
        row, as SQL does, not the (possibly stale) copy.
        """
        row_id = (model, key)
        if row_id in self._removed:
            return None
        written = self._set_rows.get(row_id)
        if written is not None:
            return written[0]
        entity = self.identity.get(row_id)
        baseline = self._baselines.get(row_id)
        if entity is not None and (baseline is None or baseline.flushed or baseline.inserted):
            return entity
        return self.store.table(model).get(key)

    def set_row(self, model: type[Any], key: Key, values: dict[str, Any], now: Any) -> None:
        """A set-based UPDATE of one row the statement matched (after a :meth:`flush`).

        When this workspace holds a stale copy, the row is changed where it
        is (written on commit if nobody changed it meanwhile) and the copy
        takes the values on top of its own version, as SQLAlchemy's
        synchronisation does: it stays stale, so saving it raises.
        """
        entity = self.load(model, key)
        row_id = (model, key)
        baseline = self._baselines.get(row_id)
        committed = self.store.table(model).get(key)
        stale = (
            baseline is not None
            and not (baseline.flushed or baseline.inserted)
            and committed is not None
            and (row_id in self._set_rows or state_of(committed)[0] != baseline.state[0])
        )
        if not stale:
            self.apply_set(model, entity, values, now)
            return
        assert baseline is not None
        written = self._set_rows.get(row_id)
        if written is None:
            written = self._set_rows[row_id] = (copy.deepcopy(committed), _version(model, committed))
        for target in (written[0], entity):
            for name, value in values.items():
                setattr(target, name, value)
            _apply_update_defaults(model, target, now)
        baseline.state = state_of(entity)

    def delete_row(self, model: type[Any], key: Key) -> None:
        """A set-based DELETE of one row the statement matched: no check of the version the copy holds."""
        row = self.current(model, key)
        entity = self.load(model, key)
        self._set_deleted[(model, key)] = _version(model, row)
        self.remove(model, entity)

    # --- writing ---------------------------------------------------------------

    def add(self, model: type[Any], entity: Any) -> None:
        traits = model_traits(model)
        mapper = mapper_of(model)
        pk = list(mapper.primary_key)
        if len(pk) == 1 and getattr(entity, traits.primary_key[0], None) is None:
            if _autoincrements(pk[0]):
                setattr(entity, traits.primary_key[0], self.store.next_id(model))
            elif pk[0].default is not None:  # a client-side key default (uuid7): SQL applies it at flush
                setattr(entity, traits.primary_key[0], _call_default(pk[0].default))
        key = identity_of(model, entity)
        if any(part is None for part in key):
            raise ConflictError(f"{traits.entity} needs a primary key", entity=traits.entity)
        row_id = (model, key)
        current = self.identity.get(row_id)
        if current is entity:
            return
        self._claim(entity, traits.entity)
        if current is not None:
            raise ConflictError(f"{traits.entity} {key!r} is already in this unit of work", entity=traits.entity)
        self._removed.pop(row_id, None)
        self.identity[row_id] = entity

    def flush(self) -> None:
        """Write pending changes as SQLAlchemy's autoflush does before every query.

        New rows get their insert defaults (``version`` 1), changed rows one
        ``version`` bump and a new ``updated_at``, now rather than on commit,
        so that a change, a query and another change make two UPDATEs here
        as they do in SQL. What stays for commit: the version check, the
        duplicate-key check, and making anything visible to other units of work.
        """
        self._require_usable()
        now = utcnow()
        for row_id, entity in self.identity.items():
            model, key = row_id
            baseline = self._baselines.get(row_id)
            if baseline is not None:
                state = state_of(entity)
                if state == baseline.state:
                    continue
                check_entity_values(entity, changed_only=False)
                if _versioned_change(model, state, baseline.state):
                    _apply_update_defaults(model, entity, now, previous=_flushed_version(model, baseline))
                    state = state_of(entity)
                baseline.state, baseline.flushed = state, True
                continue
            committed = self.store.table(model).get(key)
            held = entity.__dict__.get(_READ_AT, _MISSING)
            if committed is None:
                check_entity_values(entity, changed_only=False)
                apply_insert_defaults(model, entity)
                self._baselines[row_id] = _Baseline(
                    _version(model, entity), state_of(entity), flushed=True, inserted=True
                )
            elif held is not _MISSING:
                # A copy from an earlier unit of work, added back: an UPDATE if it differs.
                if _columns_changed(model, entity, None, committed):
                    _apply_update_defaults(model, entity, now, previous=held)
                self._baselines[row_id] = _Baseline(held, state_of(entity), flushed=True)
            else:
                # A new row whose key is taken: the INSERT of SQL's autoflush fails here,
                # and leaves the transaction to be rolled back.
                self.failed = True
                raise _duplicate_key(model)

    def apply_set(self, model: type[Any], entity: Any, values: dict[str, Any], now: Any) -> None:
        """A set-based change, applied at once as the SQL statement would be (after a :meth:`flush`)."""
        row_id = (model, identity_of(model, entity))
        if row_id not in self._baselines:
            apply_insert_defaults(model, entity)
        for name, value in values.items():
            setattr(entity, name, value)
        _apply_update_defaults(model, entity, now)
        baseline = self._baselines.get(row_id)
        if baseline is not None:
            baseline.state = state_of(entity)
            baseline.flushed = True

    def detach(self, model: type[Any], entity: Any) -> None:
        """Keep a private copy of a just-added entity, so later changes to ``entity`` are not saved."""
        row_id = (model, identity_of(model, entity))
        self.identity[row_id] = copy.deepcopy(entity)

    def remove(self, model: type[Any], entity: Any) -> None:
        row_id = (model, identity_of(model, entity))
        if self.identity.get(row_id) is not entity:
            self._claim(entity, model_traits(model).entity)
        self.identity.pop(row_id, None)
        self._removed[row_id] = entity

    def commit(self) -> None:
        """Apply every change atomically, or raise and apply nothing."""
        self._require_usable()
        for row_id, entity in self.identity.items():
            # What the SQL flush checks before any statement (values.py); rows
            # an autoflush already wrote were checked then.
            baseline = self._baselines.get(row_id)
            if baseline is None or state_of(entity) != baseline.state:
                check_entity_values(entity, changed_only=False)
        now = utcnow()
        writes: list[tuple[RowId, Any, bool]] = []
        deletes: list[RowId] = []
        for row_id, entity in self._removed.items():
            model, key = row_id
            committed = self.store.table(model).get(key)
            held = entity.__dict__.get(_READ_AT, _MISSING)
            baseline = self._baselines.get(row_id)
            if baseline is not None:
                held = baseline.version
            held = self._set_deleted.get(row_id, held)
            if committed is not None and held is not _MISSING:
                self._check_version(model, key, committed, held)
            deletes.append(row_id)
        set_rows = [(row_id, row) for row_id, (row, _) in self._set_rows.items() if row_id not in self._removed]
        for row_id, (_, version) in self._set_rows.items():
            committed = self.store.table(row_id[0]).get(row_id[1])
            if row_id not in self._removed and (committed is None or _version(row_id[0], committed) != version):
                raise ConcurrencyError(entity=model_traits(row_id[0]).entity, id=_id(row_id[1]), version=version)
        for row_id, entity in self.identity.items():
            model, key = row_id
            committed = self.store.table(model).get(key)
            baseline = self._baselines.get(row_id)
            if baseline is None:
                held = entity.__dict__.get(_READ_AT, _MISSING)
                if committed is None:
                    writes.append((row_id, entity, True))
                    continue
                if held is _MISSING:
                    raise _duplicate_key(model)
                self._check_version(model, key, committed, held)
                writes.append((row_id, entity, False))
                continue
            if state_of(entity) == baseline.state and not baseline.flushed:
                continue
            if baseline.inserted:
                if committed is not None:
                    raise _duplicate_key(model)
                writes.append((row_id, entity, False))
                continue
            if committed is None:
                raise ConcurrencyError(entity=model_traits(model).entity, id=_id(key), version=baseline.version)
            self._check_version(model, key, committed, baseline.version)
            writes.append((row_id, entity, False))
        for row_id in deletes:
            self.store.table(row_id[0]).pop(row_id[1], None)
        for row_id, row in set_rows:
            self.store.table(row_id[0])[row_id[1]] = copy.deepcopy(row)
        for row_id, entity, is_new in writes:
            model, key = row_id
            baseline = self._baselines.get(row_id)
            if is_new:
                apply_insert_defaults(model, entity)
            elif _columns_changed(model, entity, baseline, self.store.table(model).get(key)):
                # Changed since the last write in this workspace: one more UPDATE.
                previous = _flushed_version(model, baseline) if baseline is not None else entity.__dict__.get(_READ_AT)
                _apply_update_defaults(model, entity, now, previous=previous)
            stored = copy.deepcopy(entity)
            stored.__dict__.pop(_READ_AT, None)
            stored.__dict__.pop(_OWNER, None)
            self.store.table(model)[key] = stored
            version = _version(model, entity)
            entity.__dict__[_READ_AT] = version
            self._baselines[row_id] = _Baseline(version, state_of(entity))
        self._removed.clear()
        self._set_rows.clear()
        self._set_deleted.clear()
        self.store.commits += 1

    def _check_version(self, model: type[Any], key: Key, committed: Any, held: Any) -> None:
        traits = model_traits(model)
        if traits.version is None:
            return
        if getattr(committed, traits.version) != held:
            raise ConcurrencyError(entity=traits.entity, id=_id(key), version=held)


def _duplicate_key(model: type[Any]) -> ConflictError:
    # Worded as the database's unique violation is: the constraint, never the key's value.
    table = mapper_of(model).base_mapper.local_table
    entity = model_traits(model).entity
    if isinstance(table, Table):
        return duplicate_key_error(table, entity=entity)
    return ConflictError(f"{entity} conflicts with existing data", entity=entity)  # mapped to a non-table


def _id(key: Key) -> Any:
    return key[0] if len(key) == 1 else key


def _version(model: type[Any], entity: object) -> Any:
    traits: ModelTraits = model_traits(model)
    return getattr(entity, traits.version) if traits.version else None


def _autoincrement_type(column: Any) -> bool:
    try:
        return column.type.python_type is int
    except NotImplementedError:
        return False


def _autoincrements(column: Any) -> bool:
    return column.autoincrement in (True, "auto") and _autoincrement_type(column) and not column.foreign_keys


def _call_default(default: Any) -> Any:
    if default is None:
        return _MISSING
    if getattr(default, "is_scalar", False):
        return copy.copy(default.arg)
    if getattr(default, "is_callable", False):
        return default.arg(None)
    return _MISSING


def apply_insert_defaults(model: type[Any], entity: Any) -> None:
    """Column defaults for attributes left unset, as the INSERT would apply them."""
    traits = model_traits(model)
    for prop in mapper_of(model).column_attrs:
        if entity.__dict__.get(prop.key) is not None:
            continue
        if prop.key == traits.version:
            setattr(entity, prop.key, 1)
            continue
        value = _call_default(prop.columns[0].default)
        if value is not _MISSING:
            setattr(entity, prop.key, value)


def _columns_changed(model: type[Any], entity: Any, baseline: _Baseline | None, committed: Any) -> bool:
    """Whether writing ``entity`` is an UPDATE of its row (a change of its columns or of its aggregate's parts)."""
    if baseline is not None:
        return _versioned_change(model, state_of(entity), baseline.state)
    return committed is None or _versioned_change(model, state_of(entity), state_of(committed))


def _versioned_change(model: type[Any], state: Any, before: Any) -> bool:
    """A change the SQL unit of work would write with a version bump.

    The row's own columns, and for an aggregate root the objects its parts
    hold (as :mod:`keel.infrastructure.database.aggregate_lock` bumps the
    root for any change inside its aggregate); not its references to others.
    """
    if state[0] != before[0]:
        return True
    plan = plan_of(mapper_of(model))
    if plan is None or not plan.root or len(state) != 2 or len(before) != 2:
        return False
    return _parts(plan.parts, state[1]) != _parts(plan.parts, before[1])


def _parts(parts: tuple[str, ...], related: tuple[tuple[str, Any], ...]) -> list[Any]:
    return [value for key, value in related if key in parts]


def _flushed_version(model: type[Any], baseline: _Baseline) -> Any:
    """The version the row had at the last flush (what the UPDATE's WHERE would hold)."""
    traits = model_traits(model)
    if traits.version is None:
        return _MISSING
    columns = baseline.state[0] if isinstance(baseline.state, tuple) and len(baseline.state) == 2 else ()
    return dict(columns).get(traits.version, _MISSING)


def _apply_update_defaults(model: type[Any], entity: Any, now: Any, previous: Any = _MISSING) -> None:
    """``version + 1`` and ``onupdate`` columns, as the UPDATE would apply them.

    Like SQLAlchemy's version counter, the new version is the one the row had
    (``previous``) plus one, whatever the entity's attribute says: an
    aggregate that bumps its own version by hand (Cosmic Python's habit)
    ends one higher, not two.
    """
    traits = model_traits(model)
    if traits.version is not None:
        base = getattr(entity, traits.version) if previous is _MISSING or previous is None else previous
        setattr(entity, traits.version, (base or 0) + 1)
    for prop in mapper_of(model).column_attrs:
        if prop.key == traits.updated_at:
            setattr(entity, prop.key, now)
            continue
        onupdate = _call_default(prop.columns[0].onupdate)
        if onupdate is not _MISSING:
            setattr(entity, prop.key, onupdate)
