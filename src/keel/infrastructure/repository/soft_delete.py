"""Hide soft-deleted rows from every ORM read, relationship loads included.

A ``do_orm_execute`` listener adds a ``with_loader_criteria(... deleted_at IS
NULL)`` option to each ORM SELECT, so the rule holds for repository queries,
hand-written ``select(Model)``, ``session.get``, and lazy, selectin and
joined relationship loads alike; a WHERE clause added by the repository alone
would miss the relationships.

Only sessions that opted in are filtered: those from
:func:`keel.infrastructure.database.create_session_factory`, those a unit of
work opens, and those a repository is built on (all mark ``session.info``,
see :func:`hide_soft_deleted`). Any other ``Session`` in the process (an
Alembic data migration, a script's own sessionmaker) sees every row.

Opt out per statement with the execution option ``include_deleted=True``, or
with the loader option :class:`IncludeDeleted` where only options can be
passed (``session.merge(entity, options=[IncludeDeleted()])``)::

    await session.execute(select(Product), execution_options={"include_deleted": True})

Refreshes and expired-attribute loads are never filtered: an entity already
in hand must stay loadable after it is soft-deleted.

Hiding rows from relationship collections has a cost when deleting for
good: the ORM cascades a delete (or unlinks children) through the collection
it loaded, which lacks the soft-deleted children. :func:`load_hidden_dependents`
puts them back before a repository's ``hard_delete``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    Mapper,
    ORMExecuteState,
    RelationshipDirection,
    RelationshipProperty,
    Session,
    UserDefinedOption,
    mapperlib,
    with_loader_criteria,
    with_parent,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, ColumnClause
from sqlalchemy.sql.selectable import Select

from keel.infrastructure.database import listeners
from keel.infrastructure.database.orm import DELETED_AT, SoftDeleteMixin, model_traits
from keel.infrastructure.repository.settings import HIDE_SOFT_DELETED

#: The execution option that turns the filter off for one statement.
INCLUDE_DELETED = "include_deleted"


class _Criteria:
    """The loader criteria that hide soft-deleted rows, rebuilt when a soft-delete class is mapped.

    ``SoftDeleteMixin`` classes share one criterion; the others (imperatively
    mapped domain classes, ``soft_delete_column()`` in a ``__table__``) get
    one each, by the attribute that holds their deletion time.
    """

    __slots__ = ("_options", "others")

    def __init__(self) -> None:
        #: class -> attribute name, for soft-delete classes outside SoftDeleteMixin.
        self.others: dict[type[Any], str] = {}
        self._options: tuple[ORMOption, ...] | None = None

    def add(self, cls: type[Any], key: str) -> None:
        self.others[cls] = key
        self._options = None

    def options(self) -> tuple[ORMOption, ...]:
        if self._options is None:
            options: list[ORMOption] = [
                with_loader_criteria(SoftDeleteMixin, lambda cls: cls.deleted_at.is_(None), include_aliases=True)
            ]
            for cls, key in self.others.items():
                options.append(with_loader_criteria(cls, getattr(cls, key).is_(None), include_aliases=True))
            self._options = tuple(options)
        return self._options


_CRITERIA = _Criteria()


class IncludeDeleted(UserDefinedOption):
    """Loader option: this statement sees soft-deleted rows (for APIs that take options, not execution options)."""


def hide_soft_deleted(session: Session | AsyncSession) -> None:
    """Turn the soft-delete filter on for ``session``, unless its ``info`` already says otherwise.

    Installs keel's session listeners too (once per process), so a unit of
    work or repository on a session from a hand-built factory gets them.
    """
    listeners.install()
    session.info.setdefault(HIDE_SOFT_DELETED, True)


#: Whether ``listeners.install`` asked for the read filter, and whether it is registered.
_FILTER = {"wanted": False, "registered": False}


def filter_reads_once_needed() -> None:
    """Register :func:`hide_soft_deleted_rows` now if a soft-deletable class is mapped, else when one is.

    Called by ``listeners.install``. Without any soft-deletable class no read
    can return a soft-deleted row, so the listener would change nothing, yet
    cost every ORM statement of every session an ``ORMExecuteState``.
    """
    _FILTER["wanted"] = True
    if any(_maps_soft_delete(m) for registry in mapperlib._all_registries() for m in registry.mappers):
        _register_filter()


def filtering_reads_when_needed() -> bool:
    """Whether the read filter is registered, or not needed yet (no soft-deletable class is mapped)."""
    if not _FILTER["wanted"]:
        return False
    registered = event.contains(Session, "do_orm_execute", hide_soft_deleted_rows)
    return registered or not any(_maps_soft_delete(m) for r in mapperlib._all_registries() for m in r.mappers)


def _register_filter() -> None:
    if not _FILTER["registered"]:
        _FILTER["registered"] = True
        if not event.contains(Session, "do_orm_execute", hide_soft_deleted_rows):
            event.listen(Session, "do_orm_execute", hide_soft_deleted_rows)


def _maps_soft_delete(mapper: Mapper[Any]) -> bool:
    """Whether ``mapper``'s rows can be soft-deleted (the rule of ``model_traits(...).deleted_at``)."""
    if issubclass(mapper.class_, SoftDeleteMixin):
        return True
    return any(column.info.get("keel") == DELETED_AT for column in mapper.columns)


# Mapping hooks, registered on import: they must see every mapper, however
# early it is configured (``listeners.install`` runs later, with the first engine).
@event.listens_for(Mapper, "after_mapper_constructed")
def _filter_for(mapper: Mapper[Any], cls: type[Any]) -> None:
    # Before the mapper can load a row: a class mapped after install() gets its filter here.
    if _FILTER["wanted"] and not _FILTER["registered"] and _maps_soft_delete(mapper):
        _register_filter()


@event.listens_for(Mapper, "mapper_configured")
def _register(mapper: Mapper[Any], cls: type[Any]) -> None:
    _REACHES.clear()  # a new mapper may make a known one reach a soft-deletable class
    _filter_for(mapper, cls)
    if issubclass(cls, SoftDeleteMixin):
        return
    for prop in mapper.column_attrs:
        if any(column.info.get("keel") == DELETED_AT for column in prop.columns):
            _CRITERIA.add(cls, prop.key)
            return


def hide_soft_deleted_rows(state: ORMExecuteState) -> None:
    """The ``do_orm_execute`` listener (installed by :func:`keel.infrastructure.database.listeners.install`)."""
    if not state.is_select or state.is_column_load or not state.session.info.get(HIDE_SOFT_DELETED):
        return
    if not _may_see_soft_deleted(state.statement):
        return  # the criteria would change nothing, and cost a statement rewrite and cache key per query
    if state.execution_options.get(INCLUDE_DELETED, False):
        return
    if any(isinstance(option, IncludeDeleted) for option in state.user_defined_options):
        return
    state.statement = state.statement.options(*_CRITERIA.options())


#: mapper -> whether a soft-deletable class is reachable from it (itself, its
#: inheritance hierarchy, or any relationship path, which joined eager loads follow).
_REACHES: dict[Mapper[Any], bool] = {}


def _may_see_soft_deleted(statement: Any) -> bool:
    """False only when ``statement`` certainly reads no soft-deletable rows.

    Decided for the shape ``session.get`` and by-key repository reads produce,
    ``select(Model).where(column == :value, ...)``, whose one entity reaches
    no soft-deletable class. Anything else (joins, several entities, columns,
    subqueries, any other WHERE clause) gets the criteria as before.
    """
    if type(statement) is not Select or statement._setup_joins or statement._from_obj:
        return True
    columns = statement._raw_columns
    if len(columns) != 1:
        return True
    entity = columns[0]._annotations.get("parententity")
    if not isinstance(entity, Mapper) or _reaches_soft_delete(entity):
        return True
    return not all(_is_key_comparison(criterion) for criterion in statement._where_criteria)


def _is_key_comparison(criterion: Any) -> bool:
    if type(criterion) is BooleanClauseList:
        return all(_is_key_comparison(clause) for clause in criterion.clauses)
    return (
        type(criterion) is BinaryExpression
        and isinstance(criterion.left, ColumnClause)
        and isinstance(criterion.right, BindParameter)
    )


def _reaches_soft_delete(mapper: Mapper[Any]) -> bool:
    try:
        return _REACHES[mapper]
    except KeyError:
        pass
    seen: set[Mapper[Any]] = set()
    todo = [mapper]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(current.iterate_to_root())
        todo.extend(current.self_and_descendants)
        todo.extend(rel.mapper for rel in current.relationships)
    reaches = any(_is_soft_deletable(m.class_) for m in seen)
    _REACHES[mapper] = reaches
    return reaches


def _is_soft_deletable(cls: type[Any]) -> bool:
    return issubclass(cls, SoftDeleteMixin) or cls in _CRITERIA.others or model_traits(cls).deleted_at is not None


# --- hard deletes through filtered collections ----------------------------------------


@cache
def _complete_before_delete(mapper: Mapper[Any]) -> tuple[RelationshipProperty[Any], ...]:
    """The relationships a delete of ``mapper``'s rows must see in full.

    Those whose target is soft-deletable (so a load may have hidden rows)
    and whose rows the ORM touches on delete: it deletes them (cascade), or
    removes association rows (many-to-many), or sets their foreign key to
    NULL (one-to-many). Not with ``passive_deletes``: then the database's
    ``ON DELETE`` does it, hidden rows included.
    """
    found = []
    for rel in mapper.relationships:
        if rel.viewonly or rel.passive_deletes or model_traits(rel.mapper.class_).deleted_at is None:
            continue
        if rel.cascade.delete or rel.secondary is not None or rel.direction is RelationshipDirection.ONETOMANY:
            found.append(rel)
    return tuple(found)


async def load_hidden_dependents(session: AsyncSession, entity: object) -> None:
    """Put soft-deleted rows back into the relationships a delete of ``entity`` goes through.

    Without them the ORM would leave soft-deleted children behind (orphans,
    or a foreign-key violation) when ``entity`` is deleted for good. Reaches
    down the delete cascade.
    """
    await _load_hidden(session, entity, set(), flushed=False)


async def _load_hidden(session: AsyncSession, entity: object, done: set[int], *, flushed: bool) -> bool:
    state = inspect(entity)
    relationships = _complete_before_delete(state.mapper)
    if id(entity) in done or not relationships or not state.persistent:
        return flushed
    done.add(id(entity))
    if not flushed:
        # Pending changes to the collections reach the database first, so the
        # reload below cannot drop a child added in this unit of work.
        await session.flush()
        flushed = True
    for rel in relationships:
        query = select(rel.mapper).where(with_parent(entity, rel.class_attribute))
        rows = list((await session.scalars(query.execution_options(**{INCLUDE_DELETED: True}))).all())
        set_committed_value(entity, rel.key, rows if rel.uselist else (rows[0] if rows else None))
        if rel.cascade.delete:
            for row in rows:
                flushed = await _load_hidden(session, row, done, flushed=flushed)
    return flushed
