"""``InMemoryRepository[T]``: the SQL repository's twin for fast unit tests.

Same methods, same arguments, same errors: filters are the same SQLAlchemy
expressions and filter objects (evaluated in Python), sorting puts NULLs
where the SQL repository does, soft-deleted rows are hidden the same way, and
every entity returned or added is reported as *seen*. Entities are copies
owned by the unit of work that handed them out; nothing reaches the store
before ``commit()``.

A repository subclass written against the public surface works on both::

    class ProductRepository(SqlAlchemyRepository[Product]):
        async def low_stock(self) -> list[Product]:
            return await self.list(Product.stock < 5)

    class FakeUnitOfWork(InMemoryUnitOfWork):
        products: ProductRepository      # built as an in-memory twin
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self, TypeVar

from sqlalchemy import Select

from keel.cross_cutting.error import ConfigurationError, ConflictError, NotFoundError
from keel.infrastructure.repository import CursorPage, Page
from keel.infrastructure.repository._base import RepositoryBase, SeenCallback, deleted_mode
from keel.infrastructure.repository._checks import coerce_identity, identity_list, validate_limit
from keel.infrastructure.repository._sorting import OrderByArg
from keel.infrastructure.repository.filters import Condition, build_conditions
from keel.infrastructure.repository.memory._evaluate import compile_where, matches, statement_where
from keel.infrastructure.repository.memory._paging import cursor_page, offset_page, sort_rows
from keel.infrastructure.repository.memory._rows import READ_AT, identity_of, mapper_of
from keel.infrastructure.repository.memory._writes import MemoryWrites
from keel.infrastructure.repository.memory.store import InMemoryStore
from keel.infrastructure.repository.memory.workspace import Workspace
from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository

T = TypeVar("T")


class InMemoryRepository(MemoryWrites[T]):
    """Repository over a :class:`Workspace`.

    Standalone, ``InMemoryRepository(model=Product)`` (or a subclass of
    ``InMemoryRepository[Product]``) gets a private store; changes are
    visible to it at once, as inside one open unit of work.
    """

    # max_page_size, default_page_size and cursor_secret: set them on a
    # subclass like on SqlAlchemyRepository; unset, that class's values apply.

    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        mark_seen: SeenCallback | None = None,
        model: type[T] | None = None,
        on_seen: SeenCallback | None = None,
    ) -> None:
        self._bind(model, mark_seen, on_seen)
        mapper_of(self.model)
        self.workspace = workspace if workspace is not None else Workspace(InMemoryStore())

    @classmethod
    def for_unit_of_work(cls, uow: Any, model: type[Any] | None = None) -> Self:
        """This repository on ``uow``'s workspace, reporting what it hands out to ``uow`` as seen."""
        return cls(uow.workspace, mark_seen=uow.mark_seen, model=model)

    @property
    def store(self) -> InMemoryStore:
        return self.workspace.store

    # --- writes (the set-based ones are in MemoryWrites) ---------------------

    def add(self, entity: T) -> T:
        """Add a new entity (stored on commit)."""
        self._check_type(entity)
        self.workspace.add(self.model, entity)
        self.mark_seen(entity)
        return entity

    def add_many(self, entities: Iterable[T]) -> builtins.list[T]:
        """Add many entities."""
        added = builtins.list(entities)
        for entity in added:
            self._check_type(entity)
        for entity in added:
            self.add(entity)
        return added

    def _attach(self, entity: T) -> None:
        # A copy from an earlier unit of work, added back like add() does:
        # saved with a check of the version it was read at.
        if READ_AT not in entity.__dict__:
            return  # never stored: not an entity of another unit of work
        if self.workspace.identity.get((self.model, identity_of(self.model, entity))) is not entity:
            self.workspace.add(self.model, entity)

    # --- reads ---------------------------------------------------------------

    async def get(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        load: Sequence[Any] = (),
        for_update: bool = False,
        nowait: bool = False,
        skip_locked: bool = False,
    ) -> T:
        """The entity with primary key ``id``; :class:`NotFoundError` if absent.

        ``load`` (loader options) and the row locks (``for_update``,
        ``nowait``, ``skip_locked``) are accepted and ignored: the twin holds
        whole objects, and its units of work take no locks.
        """
        entity = await self.get_or_none(id, include_deleted=include_deleted)
        if entity is None:
            raise NotFoundError(entity=self.traits.entity, id=id)
        return entity

    async def get_or_none(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        load: Sequence[Any] = (),
        for_update: bool = False,
        nowait: bool = False,
        skip_locked: bool = False,
    ) -> T | None:
        """The entity with primary key ``id``, or None (``load`` and the locks are ignored, as for :meth:`get`)."""
        key = coerce_identity(self.model, id)
        if (self.model, key) not in self.workspace.identity:
            self.workspace.flush()  # session.get flushes when it has to query
        entity: T | None = self.workspace.load(self.model, key)
        if entity is None or (not include_deleted and self._is_deleted(entity)):
            return None
        self.mark_seen(entity)
        return entity

    async def get_many(
        self, ids: Iterable[Any], *, include_deleted: bool = False, load: Sequence[Any] = ()
    ) -> builtins.list[T]:
        """The entities with these primary keys, in the order asked; missing ones are skipped."""
        found = []
        keys = dict.fromkeys(coerce_identity(self.model, i) for i in identity_list(ids))
        if keys:
            self.workspace.flush()
        for key in keys:
            entity = self.workspace.load(self.model, key)
            if entity is not None and (include_deleted or not self._is_deleted(entity)):
                self.mark_seen(entity)
                found.append(entity)
        return found

    async def list(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        order_by: OrderByArg = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> builtins.list[T]:
        """Entities matching every condition (SQLAlchemy expressions, filters, ``field=value``)."""
        validate_limit(limit, offset)
        rows = self._matching(where, equals, statement, include_deleted=include_deleted, only_deleted=only_deleted)
        rows = sort_rows(self.model, rows, order_by, tie_breaker=False)
        start = offset or 0
        rows = rows[start:] if limit is None else rows[start : start + limit]
        return self._hand_out(rows)

    async def list_and_count(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        order_by: OrderByArg = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> tuple[builtins.list[T], int]:
        """The entities of :meth:`list` and how many match in all."""
        validate_limit(limit, offset)
        rows = self._matching(where, equals, statement, include_deleted=include_deleted, only_deleted=only_deleted)
        total = len(rows)
        rows = sort_rows(self.model, rows, order_by, tie_breaker=False)
        start = offset or 0
        rows = rows[start:] if limit is None else rows[start : start + limit]
        return self._hand_out(rows), total

    async def count(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> int:
        """How many entities match."""
        rows = self._matching(where, equals, statement, include_deleted=include_deleted, only_deleted=only_deleted)
        return len(rows)

    async def exists(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> bool:
        """Whether any entity matches."""
        rows = self._matching(where, equals, statement, include_deleted=include_deleted, only_deleted=only_deleted)
        return bool(rows)

    async def paginate(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        page: int = 1,
        size: int | None = None,
        order_by: OrderByArg = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> Page[T]:
        """One offset page, the primary key breaking ties."""
        rows = self._matching(where, equals, statement, include_deleted=include_deleted, only_deleted=only_deleted)
        result = offset_page(self, rows, page=page, size=size, order_by=order_by)
        return Page(self._hand_out(result.items), result.total, result.page, result.size)

    async def paginate_by_cursor(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        cursor: str | None = None,
        size: int | None = None,
        order_by: OrderByArg = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> CursorPage[T]:
        """One keyset page; see :meth:`keel.SqlAlchemyRepository.paginate_by_cursor`."""
        conditions = build_conditions(self.model, where, equals)
        extra, include_deleted = self._statement_where(statement, include_deleted, shaped=False)
        rows = self._filter([*conditions, *extra], include_deleted=include_deleted, only_deleted=only_deleted)
        result = cursor_page(
            self,
            rows,
            conditions if statement is None else [*conditions, statement],
            cursor=cursor,
            size=size,
            order_by=order_by,
            mode=deleted_mode(include_deleted, only_deleted),
        )
        return CursorPage(self._hand_out(result.items), result.size, result.next_cursor, result.previous_cursor)

    # --- building blocks for subclasses -------------------------------------

    # select() is RepositoryBase's: the statement it builds is run by scalars() and the
    # reads below, which apply its WHERE clause, ORDER BY (mapped columns), LIMIT and
    # OFFSET in Python, so custom query methods written with self.select(...) work here too.
    select = RepositoryBase.select

    def _shaped_statement(self, statement: Select[Any]) -> Select[Any]:
        statement_where(self.model, statement, shaped=True)  # joins are refused here
        return statement

    async def scalars(self, statement: Select[Any]) -> builtins.list[T]:
        """Run a ``select(model)`` statement against the workspace; entities are seen."""
        where, include_deleted = self._statement_where(statement, False, shaped=True)
        rows = self._filter(where, include_deleted=include_deleted, only_deleted=False)
        order = builtins.list(getattr(statement, "_order_by_clauses", ()))
        rows = sort_rows(self.model, rows, order, tie_breaker=False)
        offset = getattr(statement, "_offset", None) or 0
        limit = getattr(statement, "_limit", None)
        rows = rows[offset:] if limit is None else rows[offset : offset + limit]
        return self._hand_out(rows)

    async def one_or_none(self, statement: Select[Any]) -> T | None:
        """The one entity ``statement`` returns (seen), or None; more than one is a ConflictError."""
        found = await self.scalars(statement)
        if len(found) > 1:
            raise ConflictError(f"more than one {self.traits.entity} matches", entity=self.traits.entity)
        return found[0] if found else None

    # --- helpers -------------------------------------------------------------

    def _matching(
        self,
        where: Iterable[Condition],
        equals: Mapping[str, Any],
        statement: Select[Any] | None,
        *,
        include_deleted: bool,
        only_deleted: bool,
    ) -> builtins.list[Any]:
        conditions = build_conditions(self.model, where, equals)
        extra, include_deleted = self._statement_where(statement, include_deleted, shaped=False)
        return self._filter([*conditions, *extra], include_deleted=include_deleted, only_deleted=only_deleted)

    def _statement_where(
        self, statement: Select[Any] | None, include_deleted: bool, *, shaped: bool
    ) -> tuple[builtins.list[Any], bool]:
        if statement is None:
            return [], include_deleted
        where, option = statement_where(self.model, statement, shaped=shaped)
        return where, include_deleted or option

    def _filter(
        self, conditions: builtins.list[Any], *, include_deleted: bool, only_deleted: bool
    ) -> builtins.list[Any]:
        self._check_deleted_scope(include_deleted, only_deleted)
        evaluators = [compile_where(self.model, c) for c in conditions]
        self.workspace.flush()  # every SQL query autoflushes first
        deleted_at = self.traits.deleted_at
        rows = []
        for key in self.workspace.keys(self.model):
            row = self.workspace.peek(self.model, key)
            if row is None:
                continue
            if deleted_at is not None:
                deleted = getattr(row, deleted_at) is not None
                if (only_deleted and not deleted) or (not only_deleted and not include_deleted and deleted):
                    continue
            if all(matches(e, row) for e in evaluators):
                rows.append(row)
        return rows

    def _hand_out(self, rows: Iterable[Any]) -> builtins.list[T]:
        entities = []
        for row in rows:
            entity = self.workspace.load(self.model, identity_of(self.model, row))
            self.mark_seen(entity)
            entities.append(entity)
        return entities


@functools.cache
def in_memory_twin(repository: type[Any]) -> type[Any]:
    """The in-memory class standing in for ``repository``.

    An ``InMemoryRepository`` is its own twin. For a ``SqlAlchemyRepository``
    subclass, a class that takes the storage methods from
    ``InMemoryRepository`` and the custom query methods from the subclass.
    """
    if issubclass(repository, InMemoryRepository):
        return repository
    if not issubclass(repository, SqlAlchemyRepository):
        raise ConfigurationError(f"{repository.__name__} is not a repository class")
    if repository is SqlAlchemyRepository:
        return InMemoryRepository
    return type(f"InMemory{repository.__name__}", (InMemoryRepository, repository), {"__module__": __name__})
