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
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy import ColumnElement, Select, delete, exists, func, inspect, select, update
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.cross_cutting.error import ConflictError, NotFoundError, ValidationError
from keel.domain.messages import utcnow
from keel.infrastructure.database._translate import require_attachable, translating
from keel.infrastructure.database.engine import REPOSITORY_SETTINGS
from keel.infrastructure.repository._base import RepositoryBase, SeenCallback
from keel.infrastructure.repository._bulk import (
    MixedKeys,
    attribute_rows,
    bulk_shape,
    carries_related,
    entity_rows,
    mapping_rows,
)
from keel.infrastructure.repository._bulk_insert import execute_insert
from keel.infrastructure.repository._checks import (
    check_page,
    check_size,
    check_update_values,
    coerce_identity,
    error,
    identity_list,
    validate_limit,
)
from keel.infrastructure.repository._identity import key_conditions
from keel.infrastructure.repository._keyset import keyset_condition, plan_cursor_page
from keel.infrastructure.repository._sorting import OrderByArg, resolve_order_by, sort_keys
from keel.infrastructure.repository.cursor import SecretLike, default_cursor_secret, secret_bytes
from keel.infrastructure.repository.filters import Condition, build_conditions
from keel.infrastructure.repository.pages import CursorPage, Page
from keel.infrastructure.repository.soft_delete import INCLUDE_DELETED, hide_soft_deleted, load_hidden_dependents

T = TypeVar("T")


class SqlAlchemyRepository(RepositoryBase[T]):
    """Generic repository over one mapped class ``T``, bound to one session."""

    #: Largest page ``paginate``/``paginate_by_cursor`` serve; larger sizes are refused.
    #: Set on a subclass to override the settings; on this class, the process-wide default.
    max_page_size: ClassVar[int] = 1000
    #: Page size when the caller gives none (same precedence).
    default_page_size: ClassVar[int] = 50
    #: Key that signs cursors; None: the session factory's, else the process-wide default.
    cursor_secret: ClassVar[SecretLike | None] = None

    def __init__(
        self,
        session: AsyncSession,
        *,
        on_seen: SeenCallback | None = None,
        model: type[T] | None = None,
    ) -> None:
        self._bind(model, on_seen)
        self.session = session
        # Reads rely on the session-wide soft-delete filter; a session from a
        # hand-built factory gets it here (an explicit False in info stays).
        hide_soft_deleted(session)

    @classmethod
    def for_unit_of_work(cls, uow: Any, model: type[Any] | None = None) -> Self:
        """This repository on ``uow``'s session, reporting what it hands out to ``uow`` as seen."""
        return cls(uow.session, on_seen=uow.mark_seen, model=model)

    # --- writes --------------------------------------------------------------

    def add(self, entity: T) -> T:
        """Add a new entity to the session (inserted on flush/commit)."""
        self._check_type(entity)
        try:
            self.session.add(entity)
        except InvalidRequestError:
            require_attachable(self.session, entity, self.traits.entity)
            raise
        self._on_seen(entity)
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
            self._on_seen(entity)
        return added

    async def insert_many(self, items: Iterable[T] | Iterable[Mapping[str, Any]]) -> int:
        """Write many new rows now, set-based; returns how many.

        For bulk loads: the rows go out in insertmanyvalues batches like a
        hand-written ``session.execute(insert(Model), rows)``, and keel's
        columns (``version``, timestamps) and Python-side defaults are filled
        in, on the entities too; server-generated keys are read back onto
        the entities. Unlike :meth:`add_many`, the entities are *not* kept in
        the session: later changes to them are not saved (load them again to
        change them). Aggregates among them are still seen, so their events
        are released on commit. ``items`` may also be plain mappings of
        attribute values, each with any subset of the columns (missing ones
        get their defaults, or NULL). Models the set-based path cannot serve
        (inheritance, mapper insert events, server-side or SQL-expression
        defaults), and entities carrying related objects (children in a
        collection, or a parent given as ``parent=``), fall back to
        :meth:`add_many` plus a flush, so nothing is dropped; those entities
        stay in the session.
        """
        batch = builtins.list(items)
        if not batch:
            return 0
        entities: builtins.list[Any] = [item for item in batch if not isinstance(item, Mapping)]
        if entities and len(entities) != len(batch):
            raise ValidationError(
                "insert_many takes entities or mappings, not both",
                errors=[error("items", "mixed entities and mappings")],
            )
        for entity in entities:
            self._check_type(entity)
        shape = bulk_shape(self.model)
        if shape.unsupported or carries_related(self.model, entities):
            if not entities:
                entities = [self._new_from_mapping(row) for row in attribute_rows(self.model, batch)]  # type: ignore[arg-type]
            self.add_many(entities)
            with translating(entity=self.traits.entity):
                await self.session.flush()
            return len(entities)
        try:
            if not entities:
                return await execute_insert(self.session, self.model, mapping_rows(self.model, batch, utcnow()), None)  # type: ignore[arg-type]
            rows, read_keys = entity_rows(self.model, entities, utcnow())
        except MixedKeys:
            raise ValidationError(
                f"insert_many needs every {self.traits.entity} with a key, or every one without",
                errors=[error("items", "some entities have keys and some do not")],
            ) from None
        inserted = await execute_insert(
            self.session, self.model, rows, shape.generated_key if read_keys else None, entities
        )
        for entity in entities:
            self._on_seen(entity)
        return inserted

    def _new_from_mapping(self, row: Mapping[str, Any]) -> Any:
        # The class manager builds the instance without calling __init__, so
        # imperatively mapped domain classes with their own constructors work.
        entity = inspect(self.model).class_manager.new_instance()
        for name, value in row.items():
            setattr(entity, name, value)
        return entity

    async def hard_delete(self, entity: T) -> None:
        """Delete the row for good (version-checked when the model has a version).

        Relationships the delete cascades through (or unlinks) are reloaded
        with their soft-deleted rows first, so those are deleted or unlinked
        too instead of being left behind pointing at a missing row.
        """
        self._check_type(entity)
        require_attachable(self.session, entity, self.traits.entity)
        self._on_seen(entity)
        with translating(entity=self.traits.entity):
            await load_hidden_dependents(self.session, entity)
            await self.session.delete(entity)

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

    async def update_many(
        self,
        *where: Condition,
        values: Mapping[str, Any],
        include_deleted: bool = False,
        **equals: Any,
    ) -> int:
        """One ``UPDATE ... WHERE``: set ``values`` on every matching row; returns the row count.

        ``version`` rises by one and ``updated_at`` moves on every row it
        touches, so later version-checked saves of copies loaded before it
        fail as they should. It does not check versions itself (there is no
        held version for rows never loaded): use the unit of work for
        read-check-write changes. Soft-deleted rows are skipped unless
        ``include_deleted=True``.
        """
        check_update_values(self.model, self.traits, values)
        self._check_deleted_scope(include_deleted, False)
        conditions = build_conditions(self.model, where, equals)
        stmt = (
            update(self.model)
            .where(*conditions, *self._soft_delete_scope(include_deleted))
            .values(**values, **self._change_marks())
        )
        return await self._execute_dml(stmt)

    async def delete_many(self, *where: Condition, **equals: Any) -> int:
        """Delete every matching row in one statement; returns the row count.

        Soft (an ``UPDATE`` setting ``deleted_at``, ``version`` and
        ``updated_at`` of rows not yet deleted) when the model supports it,
        a ``DELETE`` otherwise. No per-row version check, as with
        :meth:`update_many`.
        """
        conditions = build_conditions(self.model, where, equals)
        deleted_at = self.traits.deleted_at
        if deleted_at is None:
            return await self._execute_dml(delete(self.model).where(*conditions))
        now = utcnow()
        stmt = update(self.model).where(*conditions, *self._soft_delete_scope(False))
        return await self._execute_dml(stmt.values({deleted_at: now, **self._change_marks(now)}))

    # --- reads ---------------------------------------------------------------

    async def get(self, id: Any, *, include_deleted: bool = False) -> T:
        """The entity with primary key ``id``; :class:`NotFoundError` if absent or soft-deleted."""
        entity = await self.get_or_none(id, include_deleted=include_deleted)
        if entity is None:
            raise NotFoundError(entity=self.traits.entity, id=id)
        return entity

    async def get_or_none(self, id: Any, *, include_deleted: bool = False) -> T | None:
        """The entity with primary key ``id``, or None."""
        key = coerce_identity(self.model, id)
        options = {INCLUDE_DELETED: True} if include_deleted else None
        with translating(entity=self.traits.entity):
            entity: T | None = await self.session.get(self.model, key, execution_options=options or {})
        # session.get answers from the identity map without a flush, so a row
        # deleted in this unit of work but not flushed yet is still there.
        if entity is None or entity in self.session.deleted or (not include_deleted and self._is_deleted(entity)):
            return None
        self._on_seen(entity)
        return entity

    async def get_many(self, ids: Iterable[Any], *, include_deleted: bool = False) -> builtins.list[T]:
        """The entities with these primary keys, in the order asked; missing ones are skipped.

        Any number of ids: on PostgreSQL a one-column key goes out as one
        array parameter (``= ANY($1)``), otherwise the ids are sent in
        chunks that stay below every driver's parameter limit.
        """
        keys = builtins.list(dict.fromkeys(coerce_identity(self.model, i) for i in identity_list(ids)))
        if not keys:
            return []
        by_key: dict[tuple[Any, ...], T] = {}
        dialect = self.session.get_bind(mapper=inspect(self.model)).dialect.name
        for condition in key_conditions(self.model, self.traits.primary_key, keys, dialect):
            for entity in await self._fetch(self.select(condition, include_deleted=include_deleted)):
                by_key[self._identity_of(entity)] = entity
        found = [by_key[k] for k in keys if k in by_key]
        for entity in found:
            self._on_seen(entity)
        return found

    async def list(
        self,
        *where: Condition,
        order_by: OrderByArg = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> builtins.list[T]:
        """Entities matching every condition (SQLAlchemy expressions, filters, ``field=value``)."""
        validate_limit(limit, offset)
        stmt = self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        stmt = stmt.order_by(*resolve_order_by(self.model, order_by))
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return await self._scalars(stmt)

    async def count(
        self, *where: Condition, include_deleted: bool = False, only_deleted: bool = False, **equals: Any
    ) -> int:
        """How many entities match (one ``COUNT`` query)."""
        return await self._count(
            self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        )

    async def exists(
        self, *where: Condition, include_deleted: bool = False, only_deleted: bool = False, **equals: Any
    ) -> bool:
        """Whether any entity matches."""
        inner = self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        stmt = select(exists(inner)).execution_options(**inner.get_execution_options())
        with translating(entity=self.traits.entity):
            return bool((await self.session.execute(stmt)).scalar())

    async def paginate(
        self,
        *where: Condition,
        page: int = 1,
        size: int | None = None,
        order_by: OrderByArg = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> Page[T]:
        """One offset page: ``LIMIT``/``OFFSET`` plus one ``COUNT`` for the total.

        The primary key is appended to the ordering so pages never overlap.
        A deep page costs every row before it; prefer
        :meth:`paginate_by_cursor` for feeds and exports.
        """
        page = check_page(page)
        size = check_size(size, default=self._setting("default_page_size"), maximum=self._setting("max_page_size"))
        stmt = self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        order = resolve_order_by(self.model, order_by, tie_breaker=True)
        total = await self._count(stmt)
        offset = (page - 1) * size
        items: builtins.list[T] = []
        if offset < total:
            items = await self._scalars(stmt.order_by(*order).offset(offset).limit(size))
        return Page(items, total, page, size)

    async def paginate_by_cursor(
        self,
        *where: Condition,
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
        ``next_cursor`` or ``previous_cursor`` back with the same ordering and
        filters; a cursor that was tampered with, signed with another key or
        made for another query is a :class:`ValidationError`. Page N costs
        what page 1 costs when an index matches the ordering.
        """
        size = check_size(size, default=self._setting("default_page_size"), maximum=self._setting("max_page_size"))
        self._check_deleted_scope(include_deleted, only_deleted)
        keys = sort_keys(self.model, order_by)
        conditions = build_conditions(self.model, where, equals)
        plan = plan_cursor_page(
            self.model,
            keys=keys,
            conditions=conditions,
            mode=_mode(include_deleted, only_deleted),
            cursor=cursor,
            size=size,
            secret=self._cursor_secret(),
        )
        stmt = self.select(*conditions, include_deleted=include_deleted, only_deleted=only_deleted)
        if plan.boundary is not None:
            stmt = stmt.where(keyset_condition(self.model, plan.read_keys, plan.boundary))
        stmt = stmt.order_by(*(k.clause(self.model) for k in plan.read_keys)).limit(plan.fetch)
        rows = await self._fetch(stmt)
        result = plan.page(rows, lambda row: tuple(getattr(row, k.name) for k in keys))
        for entity in result.items:
            self._on_seen(entity)
        return result

    # --- building blocks for subclasses -------------------------------------

    def select(
        self,
        *where: Condition,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> Select[T]:
        """``SELECT model`` with the conditions and the soft-delete rule applied.

        Live rows only by default (through the session-wide soft-delete
        criteria, which also reach relationship loads); ``include_deleted``
        and ``only_deleted`` set the ``include_deleted`` execution option.
        """
        self._check_deleted_scope(include_deleted, only_deleted)
        stmt: Select[T] = select(self.model)
        deleted_at = self.traits.deleted_at
        if deleted_at is not None and (include_deleted or only_deleted):
            stmt = stmt.execution_options(**{INCLUDE_DELETED: True})
            if only_deleted:
                stmt = stmt.where(getattr(self.model, deleted_at).is_not(None))
        conditions = build_conditions(self.model, where, equals)
        if conditions:
            stmt = stmt.where(*conditions)
        return stmt

    async def _scalars(self, stmt: Select[T]) -> builtins.list[T]:
        """Run ``stmt`` and mark every returned entity as seen."""
        entities = await self._fetch(stmt)
        for entity in entities:
            self._on_seen(entity)
        return entities

    async def _fetch(self, stmt: Select[T]) -> builtins.list[T]:
        with translating(entity=self.traits.entity):
            result = await self.session.scalars(stmt)
            return builtins.list(result.unique().all())

    async def _count(self, stmt: Select[Any]) -> int:
        counted = select(func.count()).select_from(stmt.order_by(None).subquery())
        counted = counted.execution_options(**stmt.get_execution_options())
        with translating(entity=self.traits.entity):
            return int((await self.session.execute(counted)).scalar_one())

    async def _execute_dml(self, stmt: Any) -> int:
        # Never the default in-Python evaluation of the WHERE clause: it
        # matches held copies by their (possibly stale) values, so a copy
        # whose row the statement skipped took the new version and then
        # committed over a concurrent change, and delete_many dropped copies
        # of rows it never deleted. "fetch" reads the matched keys back
        # (RETURNING, or a SELECT first) and synchronises only those copies;
        # a stale one keeps a version below the row's, so saving it still
        # raises ConcurrencyError. Reading the keys back costs about as much
        # as the statement, so it is skipped when there is no copy to update.
        sync = "fetch" if self._holds_copies() else False
        stmt = stmt.execution_options(synchronize_session=sync)
        with translating(entity=self.traits.entity):
            result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    # --- helpers -------------------------------------------------------------

    def _holds_copies(self) -> bool:
        """Whether the session holds (or is about to flush) any instance of this model's table hierarchy."""
        # By class, not by identity key: a subclass's rows can live in the
        # table the statement changes, whatever its mapper's identity class.
        root = inspect(self.model).base_mapper.class_
        return any(isinstance(obj, root) for obj in (*self.session.identity_map.values(), *self.session.new))

    def _setting(self, name: str) -> Any:
        """A tuning knob: this repository's subclass, else its session factory, else the process default."""
        own = self.__dict__.get(name)
        if own is None:
            for klass in type(self).__mro__:
                if klass is SqlAlchemyRepository:
                    break
                own = klass.__dict__.get(name)
                if own is not None:
                    break
        if own is not None:
            return own
        configured = self.session.info.get(REPOSITORY_SETTINGS)
        if configured is not None:
            return getattr(configured, name)
        return getattr(SqlAlchemyRepository, name)

    def _cursor_secret(self) -> bytes:
        secret = self._setting("cursor_secret")
        return default_cursor_secret() if secret is None else secret_bytes(secret)

    def _change_marks(self, now: Any = None) -> dict[str, Any]:
        """``version + 1`` and ``updated_at = now`` for set-based changes."""
        marks: dict[str, Any] = {}
        if self.traits.version is not None:
            marks[self.traits.version] = getattr(self.model, self.traits.version) + 1
        if self.traits.updated_at is not None:
            marks[self.traits.updated_at] = now or utcnow()
        return marks

    def _soft_delete_scope(self, include_deleted: bool) -> builtins.list[ColumnElement[bool]]:
        deleted_at = self.traits.deleted_at
        if deleted_at is None or include_deleted:
            return []
        return [getattr(self.model, deleted_at).is_(None)]

    def _identity_of(self, entity: T) -> tuple[Any, ...]:
        return tuple(getattr(entity, name) for name in self.traits.primary_key)

    def _coerce_identity(self, id: Any) -> tuple[Any, ...]:
        """Check a primary key value against the key's column types."""
        return coerce_identity(self.model, id)


def _mode(include_deleted: bool, only_deleted: bool) -> str:
    return "only_deleted" if only_deleted else "include_deleted" if include_deleted else "live"
