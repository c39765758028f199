"""``SqlAlchemyRepository[T]``: the generic async repository.

Subclass it with the model as the type argument and add query methods::

    class ProductRepository(SqlAlchemyRepository[Product]):
        async def low_stock(self) -> list[Product]:
            return await self.list(Product.stock < 5)

Every entity it returns or adds is reported to the unit of work (``seen``),
so events the entity records are collected on commit.

Tuning knobs (:attr:`max_page_size`, :attr:`default_page_size`,
:attr:`cursor_secret`) come, most specific first, from the repository's own
subclass, then from the session: a factory made by
``create_session_factory(engine, repository_settings=...)`` (the container's
is) carries its settings in ``session.info``, so two applications in one
process keep theirs; then from the process-wide defaults of
:func:`keel.infrastructure.repository.configure_repositories`, for sessions
from factories built by hand.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy import Select, exists, inspect, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.interfaces import ORMOption

from keel.cross_cutting.error import ConflictError, NotFoundError
from keel.infrastructure.database._translate import require_attachable, translating
from keel.infrastructure.repository._base import SeenCallback, deleted_mode
from keel.infrastructure.repository._checks import (
    check_page,
    check_size,
    coerce_identity,
    validate_limit,
)
from keel.infrastructure.repository._sorting import OrderByArg, resolve_order_by
from keel.infrastructure.repository._sql_reads import (
    count_rows,
    fetch,
    fetch_one_or_none,
    keyset_page,
    list_with_total,
    load_many,
    load_one,
)
from keel.infrastructure.repository._sql_writes import SqlWrites
from keel.infrastructure.repository._statements import check_statement
from keel.infrastructure.repository.filters import Condition, build_conditions
from keel.infrastructure.repository.pages import CursorPage, Page
from keel.infrastructure.repository.settings import SecretLike, resolve_cursor_secret, resolve_setting
from keel.infrastructure.repository.soft_delete import hide_soft_deleted

T = TypeVar("T")


class SqlAlchemyRepository(SqlWrites[T]):
    """Generic repository over one mapped class ``T``, bound to one session."""

    #: Largest page ``paginate``/``paginate_by_cursor`` serve; larger sizes are refused.
    #: Set on a subclass to override the settings; None: the session factory's, else the process-wide default.
    max_page_size: ClassVar[int | None] = None
    #: Page size when the caller gives none (same precedence).
    default_page_size: ClassVar[int | None] = None
    #: Key that signs cursors; None: the session factory's, else the process-wide default.
    cursor_secret: ClassVar[SecretLike | None] = None
    #: Seconds ``get`` keeps an entity in the unit of work's cache (cache-aside); None: no caching.
    cache_ttl: ClassVar[float | None] = None
    #: ``list_and_count`` in one query with ``count(*) OVER ()`` instead of two (slower on big tables).
    count_with_window: ClassVar[bool] = False

    def __init__(
        self,
        session: AsyncSession,
        *,
        mark_seen: SeenCallback | None = None,
        model: type[T] | None = None,
        on_seen: SeenCallback | None = None,
    ) -> None:
        self._bind(model, mark_seen, on_seen)
        self.session = session
        # Reads rely on the session-wide soft-delete filter; a session from a
        # hand-built factory gets it here (an explicit False in info stays).
        hide_soft_deleted(session)

    @classmethod
    def for_unit_of_work(cls, uow: Any, model: type[Any] | None = None) -> Self:
        """This repository on ``uow``'s session, reporting what it hands out to ``uow`` as seen."""
        return cls(uow.session, mark_seen=uow.mark_seen, model=model)

    # --- writes (the set-based ones are in SqlWrites) ------------------------

    def add(self, entity: T) -> T:
        """Add a new entity to the session (inserted on flush/commit)."""
        self._check_type(entity)
        try:
            self.session.add(entity)
        except InvalidRequestError:
            require_attachable(self.session, entity, self.traits.entity)
            raise
        self.mark_seen(entity)
        return entity

    def add_many(self, entities: Iterable[T]) -> builtins.list[T]:
        """Add many entities; the flush sends them as batched multi-row INSERTs."""
        added = builtins.list(entities)
        for entity in added:
            self._check_type(entity)
        try:
            self.session.add_all(added)
        except InvalidRequestError:
            for entity in added:
                require_attachable(self.session, entity, self.traits.entity)
            raise
        for entity in added:
            self.mark_seen(entity)
        return added

    def _attach(self, entity: T) -> None:
        # A detached instance keeps the version it was loaded at: added back,
        # its UPDATE is checked against it (the same as a re-added copy).
        require_attachable(self.session, entity, self.traits.entity)
        state = inspect(entity)
        if not state.detached:
            return
        held = self.session.identity_map.get(state.key) if state.key is not None else None
        if held is not None and held is not entity:
            # As on the twin: two copies of one row in one unit of work would
            # each be saved over the other.
            identity = state.key[1] if state.key is not None else None
            raise ConflictError(
                f"{self.traits.entity} {identity!r} is already in this unit of work", entity=self.traits.entity
            )
        with translating(entity=self.traits.entity):
            self.session.add(entity)

    # --- reads ---------------------------------------------------------------

    async def get(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        load: Sequence[ORMOption] = (),
        for_update: bool = False,
        nowait: bool = False,
        skip_locked: bool = False,
    ) -> T:
        """The entity with primary key ``id``; :class:`NotFoundError` if absent or soft-deleted.

        ``load`` takes loader options (``selectinload(Model.children)``) for
        this call. ``for_update=True`` reads with ``SELECT ... FOR UPDATE``
        (``nowait``/``skip_locked`` as in SQL) on PostgreSQL, holding the row
        until the unit of work ends; SQLite has no row locks, so there it
        takes the database's write lock (``BEGIN IMMEDIATE``) before reading,
        and ``nowait``/``skip_locked`` change nothing. A row locked elsewhere
        under ``nowait`` is a :class:`ConcurrencyError`; under ``skip_locked`` a miss.
        """
        entity = await self.get_or_none(
            id,
            include_deleted=include_deleted,
            load=load,
            for_update=for_update,
            nowait=nowait,
            skip_locked=skip_locked,
        )
        if entity is None:
            raise NotFoundError(entity=self.traits.entity, id=id)
        return entity

    async def get_or_none(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        load: Sequence[ORMOption] = (),
        for_update: bool = False,
        nowait: bool = False,
        skip_locked: bool = False,
    ) -> T | None:
        """The entity with primary key ``id``, or None (arguments as for :meth:`get`)."""
        lock = {"nowait": nowait, "skip_locked": skip_locked} if for_update or nowait or skip_locked else None
        entity: T | None = await load_one(self, id, include_deleted=include_deleted, load=load, lock=lock)
        return entity

    async def get_many(
        self, ids: Iterable[Any], *, include_deleted: bool = False, load: Sequence[ORMOption] = ()
    ) -> builtins.list[T]:
        """The entities with these primary keys, in the order asked; missing ones are skipped.

        Any number of ids: on PostgreSQL a one-column key goes out as one
        array parameter (``= ANY($1)``), otherwise the ids are sent in
        chunks that stay below every driver's parameter limit.
        """
        return await load_many(self, ids, include_deleted=include_deleted, load=load)

    async def list(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        order_by: OrderByArg = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[ORMOption] = (),
        **equals: Any,
    ) -> builtins.list[T]:
        """Entities matching every condition (SQLAlchemy expressions, filters, ``field=value``).

        ``statement`` (a ``select(Model)`` with joins or subqueries, without
        ORDER BY or LIMIT) is the query the conditions and keel's rules are
        added to, here and on :meth:`count`, :meth:`exists`, :meth:`paginate`
        and :meth:`paginate_by_cursor`.
        """
        validate_limit(limit, offset)
        stmt = self._query(where, equals, statement, include_deleted, only_deleted)
        stmt = stmt.order_by(*resolve_order_by(self.model, order_by)).options(*load)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return await self.scalars(stmt)

    async def list_and_count(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        order_by: OrderByArg = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[ORMOption] = (),
        **equals: Any,
    ) -> tuple[builtins.list[T], int]:
        """The entities of :meth:`list` and the :meth:`count` of every match (ignoring limit and offset).

        Two queries (``COUNT`` then the rows) unless :attr:`count_with_window`
        is set, which sends one (``count(*) OVER ()``); two queries measured
        faster on a large table (see docs/repositories.md).
        """
        validate_limit(limit, offset)
        stmt = self._query(where, equals, statement, include_deleted, only_deleted)
        order = resolve_order_by(self.model, order_by)
        return await list_with_total(self, stmt.order_by(*order).options(*load), limit, offset)

    async def count(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> int:
        """How many entities match (one ``COUNT`` query)."""
        return await count_rows(
            self.session, self.traits.entity, self._query(where, equals, statement, include_deleted, only_deleted)
        )

    async def exists(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> bool:
        """Whether any entity matches."""
        inner = self._query(where, equals, statement, include_deleted, only_deleted)
        stmt = select(exists(inner)).execution_options(**inner.get_execution_options())
        with translating(entity=self.traits.entity):
            return bool((await self.session.execute(stmt)).scalar())

    async def paginate(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        page: int = 1,
        size: int | None = None,
        order_by: OrderByArg = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[ORMOption] = (),
        **equals: Any,
    ) -> Page[T]:
        """One offset page: ``LIMIT``/``OFFSET`` plus one ``COUNT`` for the total.

        The primary key is appended to the ordering so pages never overlap.
        A deep page costs every row before it; prefer
        :meth:`paginate_by_cursor` for feeds and exports.
        """
        page = check_page(page)
        size = check_size(size, default=self._setting("default_page_size"), maximum=self._setting("max_page_size"))
        stmt = self._query(where, equals, statement, include_deleted, only_deleted)
        order = resolve_order_by(self.model, order_by, tie_breaker=True)
        total = await count_rows(self.session, self.traits.entity, stmt)
        offset = (page - 1) * size
        items: builtins.list[T] = []
        if offset < total:
            items = await self.scalars(stmt.order_by(*order).offset(offset).limit(size).options(*load))
        return Page(items, total, page, size)

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
        """One keyset page: ``WHERE (sort keys) > (boundary) ORDER BY ... LIMIT size + 1``.

        ``order_by`` takes names (``"-created_at"``) or mapped attributes;
        the primary key is the final tie-breaker. Pass a page's
        ``next_cursor`` or ``previous_cursor`` back with the same ordering,
        filters and ``statement``; a cursor that was tampered with, signed
        with another key or made for another query (another statement too) is
        a :class:`ValidationError`. Page N costs what page 1 costs when an
        index matches the ordering.
        """
        size = check_size(size, default=self._setting("default_page_size"), maximum=self._setting("max_page_size"))
        self._check_deleted_scope(include_deleted, only_deleted)
        if statement is not None:
            check_statement(self.model, statement, shaped=False)
        return await keyset_page(
            self,
            build_conditions(self.model, where, equals),
            statement,
            cursor=cursor,
            size=size,
            order_by=order_by,
            mode=deleted_mode(include_deleted, only_deleted),
            include_deleted=include_deleted,
            only_deleted=only_deleted,
        )

    # --- building blocks for subclasses -------------------------------------

    # select() is RepositoryBase's (shared with the twin); this is its statement check.
    def _shaped_statement(self, statement: Select[Any]) -> Select[Any]:
        return check_statement(self.model, statement, shaped=True)

    async def scalars(self, statement: Select[Any]) -> builtins.list[T]:
        """Run a ``select(Model)...`` statement; every entity it returns is marked seen.

        Build it with :meth:`select` to keep keel's rules on it, or by hand
        (soft-deleted rows stay hidden either way: the session applies that
        rule to every ORM query).
        """
        entities = await fetch(self.session, self.traits.entity, statement)
        self._mark_all_seen(entities)
        return entities

    async def one_or_none(self, statement: Select[Any]) -> T | None:
        """The one entity ``statement`` returns (marked seen), or None.

        More than one is a :class:`ConflictError`: the query was meant to
        identify a single entity.
        """
        entity: T | None = await fetch_one_or_none(self.session, self.traits.entity, statement)
        if entity is not None:
            self.mark_seen(entity)
        return entity

    def _query(
        self,
        where: Sequence[Condition],
        equals: Mapping[str, Any],
        statement: Select[Any] | None,
        include_deleted: bool,
        only_deleted: bool,
    ) -> Select[T]:
        if statement is None:
            # Without the keyword, so a subclass's select() override from before statement= still works.
            return self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        check_statement(self.model, statement, shaped=False)
        return self.select(
            *where, statement=statement, include_deleted=include_deleted, only_deleted=only_deleted, **equals
        )

    # --- helpers -------------------------------------------------------------

    def _setting(self, name: str) -> Any:
        """A tuning knob: this repository's subclass, else its session factory, else the process default."""
        return resolve_setting(self, name, self.session.info, base=SqlAlchemyRepository)

    def _cursor_secret(self) -> bytes:
        return resolve_cursor_secret(self, self.session.info, base=SqlAlchemyRepository)

    def _identity_of(self, entity: T) -> tuple[Any, ...]:
        return tuple(getattr(entity, name) for name in self.traits.primary_key)

    def _coerce_identity(self, id: Any) -> tuple[Any, ...]:
        """Check a primary key value against the key's column types."""
        return coerce_identity(self.model, id)
