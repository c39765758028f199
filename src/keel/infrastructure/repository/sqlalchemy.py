"""``SqlAlchemyRepository[T]``: the generic async repository.

Subclass it with the model as the type argument and add query methods::

    class ProductRepository(SqlAlchemyRepository[Product]):
        async def low_stock(self) -> list[Product]:
            return await self.list(Product.stock < 5)

Every entity it returns or adds is reported to the unit of work (``seen``),
so events the entity records are collected on commit.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar, get_args, get_origin

from sqlalchemy import ColumnElement, Select, exists, func, inspect, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from keel.cross_cutting.error import ConfigurationError, NotFoundError, ValidationError
from keel.infrastructure.database._translate import translating
from keel.infrastructure.database.orm import ModelTraits, model_traits
from keel.infrastructure.repository._sorting import OrderByArg, column_attribute, resolve_order_by

T = TypeVar("T")

SeenCallback = Callable[[object], None]


def _ignore(_: object) -> None:
    return None


class SqlAlchemyRepository(Generic[T]):
    """Generic repository over one mapped class ``T``, bound to one session."""

    #: The mapped class; taken from the generic argument of the subclass.
    model: type[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = model_from_generic(cls)
        if model is not None:
            cls.model = model

    def __init__(
        self,
        session: AsyncSession,
        *,
        on_seen: SeenCallback | None = None,
        model: type[T] | None = None,
    ) -> None:
        if model is not None:
            self.model = model
        if getattr(self, "model", None) is None:
            raise ConfigurationError(
                f"{type(self).__name__} has no model: subclass SqlAlchemyRepository[Model] or pass model="
            )
        self.session = session
        self._on_seen = on_seen or _ignore

    # --- traits --------------------------------------------------------------

    @property
    def traits(self) -> ModelTraits:
        """Primary key and keel columns of :attr:`model`."""
        return model_traits(self.model)

    # --- writes --------------------------------------------------------------

    def add(self, entity: T) -> T:
        """Add a new entity to the session (inserted on flush/commit)."""
        self._check_type(entity)
        self.session.add(entity)
        self._on_seen(entity)
        return entity

    def add_many(self, entities: Iterable[T]) -> list[T]:
        """Add many entities; the flush batches their INSERTs."""
        added = list(entities)
        for entity in added:
            self._check_type(entity)
        self.session.add_all(added)
        for entity in added:
            self._on_seen(entity)
        return added

    async def hard_delete(self, entity: T) -> None:
        """Delete the row for good (version-checked when the model has a version)."""
        self._check_type(entity)
        self._on_seen(entity)
        with translating(entity=self.traits.entity):
            await self.session.delete(entity)

    # --- reads ---------------------------------------------------------------

    async def get(self, id: Any, *, include_deleted: bool = False) -> T:
        """The entity with primary key ``id``; :class:`NotFoundError` if absent."""
        entity = await self.get_or_none(id, include_deleted=include_deleted)
        if entity is None:
            raise NotFoundError(entity=self.traits.entity, id=id)
        return entity

    async def get_or_none(self, id: Any, *, include_deleted: bool = False) -> T | None:
        """The entity with primary key ``id``, or None."""
        key = self._coerce_identity(id)
        with translating(entity=self.traits.entity):
            entity: T | None = await self.session.get(self.model, key)
        if entity is None or (not include_deleted and self._is_deleted(entity)):
            return None
        self._on_seen(entity)
        return entity

    async def get_many(self, ids: Iterable[Any], *, include_deleted: bool = False) -> list[T]:
        """The entities with these primary keys, in the order asked; missing ones are skipped."""
        keys = [self._coerce_identity(i) for i in ids]
        if not keys:
            return []
        pk_columns = [getattr(self.model, name) for name in self.traits.primary_key]
        if len(pk_columns) == 1:
            condition = pk_columns[0].in_([k[0] for k in keys])
        else:
            condition = tuple_(*pk_columns).in_(keys)
        found = await self._scalars(self.select(include_deleted=include_deleted).where(condition))
        by_key = {self._identity_of(entity): entity for entity in found}
        return [by_key[k] for k in dict.fromkeys(keys) if k in by_key]

    async def list(
        self,
        *where: ColumnElement[bool],
        order_by: OrderByArg = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> builtins.list[T]:
        """Entities matching every condition (SQLAlchemy expressions and ``field=value``)."""
        stmt = self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        stmt = stmt.order_by(*resolve_order_by(self.model, order_by))
        if limit is not None:
            if limit < 0:
                raise ValidationError("limit must be >= 0", errors=[_err("limit", "must be >= 0")])
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return await self._scalars(stmt)

    async def count(
        self,
        *where: ColumnElement[bool],
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> int:
        """How many entities match."""
        inner = self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        stmt = select(func.count()).select_from(inner.order_by(None).subquery())
        with translating(entity=self.traits.entity):
            return int((await self.session.execute(stmt)).scalar_one())

    async def exists(
        self,
        *where: ColumnElement[bool],
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> bool:
        """Whether any entity matches."""
        inner = self.select(*where, include_deleted=include_deleted, only_deleted=only_deleted, **equals)
        with translating(entity=self.traits.entity):
            return bool((await self.session.execute(select(exists(inner)))).scalar())

    # --- building blocks for subclasses -------------------------------------

    def select(
        self,
        *where: ColumnElement[bool],
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> Select[T]:
        """``SELECT model`` with the soft-delete rule and the given conditions applied."""
        stmt: Select[T] = select(self.model)
        deleted_at = self.traits.deleted_at
        if deleted_at is not None:
            column = getattr(self.model, deleted_at)
            if only_deleted:
                stmt = stmt.where(column.is_not(None))
            elif not include_deleted:
                stmt = stmt.where(column.is_(None))
        for name, value in equals.items():
            attribute = column_attribute(self.model, name)
            stmt = stmt.where(attribute.is_(None) if value is None else attribute == value)
        if where:
            stmt = stmt.where(*where)
        return stmt

    async def _scalars(self, stmt: Select[T]) -> builtins.list[T]:
        """Run ``stmt`` and mark every returned entity as seen."""
        with translating(entity=self.traits.entity):
            result = await self.session.scalars(stmt)
            entities = builtins.list(result.unique().all())
        for entity in entities:
            self._on_seen(entity)
        return entities

    def _track(self, entity: T) -> T:
        """Mark an entity loaded by custom code as seen; returns it."""
        self._on_seen(entity)
        return entity

    # --- helpers -------------------------------------------------------------

    def _is_deleted(self, entity: T) -> bool:
        deleted_at = self.traits.deleted_at
        return deleted_at is not None and getattr(entity, deleted_at) is not None

    def _check_type(self, entity: object) -> None:
        if not isinstance(entity, self.model):
            raise ValidationError(
                f"{type(self).__name__} stores {self.model.__name__}, not {type(entity).__name__}",
                errors=[_err("entity", f"expected {self.model.__name__}")],
            )

    def _identity_of(self, entity: T) -> tuple[Any, ...]:
        return tuple(getattr(entity, name) for name in self.traits.primary_key)

    def _coerce_identity(self, id: Any) -> tuple[Any, ...]:
        """Check a primary key value against the key's column types."""
        mapper = inspect(self.model)
        values = id if isinstance(id, tuple) else (id,)
        columns = list(mapper.primary_key)
        if len(values) != len(columns):
            raise ValidationError(
                f"{self.traits.entity} has a {len(columns)}-column primary key",
                errors=[_err("id", f"expected {len(columns)} values")],
            )
        return tuple(_coerce(column, value, self.traits.entity) for column, value in zip(columns, values, strict=True))


def model_from_generic(cls: type) -> type[Any] | None:
    """The model ``M`` of a ``class R(SqlAlchemyRepository[M])`` (or a subclass of one)."""
    for base in getattr(cls, "__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, SqlAlchemyRepository):
            args = get_args(base)
            if args and isinstance(args[0], type):
                return args[0]
    return None


def _coerce(column: Any, value: Any, entity: str) -> Any:
    try:
        expected = column.type.python_type
    except NotImplementedError:
        return value
    if value is None:
        raise ValidationError(f"{entity} id must not be None", errors=[_err("id", "must not be None")])
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if expected is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if expected is str and isinstance(value, int | float):
        return str(value)
    try:
        return expected(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{entity} id {value!r} is not a valid {expected.__name__}",
            errors=[_err("id", f"expected {expected.__name__}")],
        ) from None


def _err(field: str, msg: str) -> dict[str, Any]:
    return {"loc": [field], "msg": msg, "type": "value_error"}


__all__: Sequence[str] = ["SqlAlchemyRepository", "model_from_generic"]
