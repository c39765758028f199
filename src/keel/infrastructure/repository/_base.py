"""What every repository shares, whatever it stores into: SQL or the in-memory twin.

The model from the generic argument, the entity checks, reporting entities to
the unit of work, and soft delete/restore (which only set ``deleted_at``:
storing the change is the concrete repository's business).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, get_args, get_origin

from sqlalchemy import Select, select

from keel.cross_cutting.error import ConfigurationError, ValidationError
from keel.domain.messages import utcnow
from keel.infrastructure.database.orm import ModelTraits, model_traits
from keel.infrastructure.repository._checks import error
from keel.infrastructure.repository.filters import Condition, build_conditions
from keel.infrastructure.repository.soft_delete import INCLUDE_DELETED

T = TypeVar("T")

SeenCallback = Callable[[object], None]


def _ignore(_: object) -> None:
    return None


class RepositoryBase(Generic[T]):
    """Base of :class:`SqlAlchemyRepository` and ``keel.testing.InMemoryRepository``."""

    #: The mapped class; taken from the generic argument of the subclass.
    model: type[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = model_from_generic(cls)
        if model is not None:
            cls.model = model

    def _bind(self, model: type[T] | None, mark_seen: SeenCallback | None, on_seen: SeenCallback | None) -> None:
        """Take ``model`` (if given) and the unit of work's ``mark_seen`` (``on_seen`` is its old name)."""
        if model is not None:
            self.model = model
        if getattr(self, "model", None) is None:
            root = next(k for k in type(self).__mro__ if RepositoryBase in k.__bases__)
            raise ConfigurationError(f"{type(self).__name__} has no model: use {root.__name__}[Model] or pass model=")
        if on_seen is not None:
            warnings.warn("on_seen= is deprecated; pass mark_seen=", DeprecationWarning, stacklevel=3)
            mark_seen = mark_seen or on_seen
        self._seen_callback = mark_seen or _ignore

    def mark_seen(self, entity: T) -> T:
        """Report ``entity`` to the unit of work as seen (its events are collected on commit); returns it.

        Every entity the repository's own methods return or add is marked
        already; call this for entities a custom query loads another way.
        The unit of work's method of the same name is what it calls.
        """
        self._seen_callback(entity)
        return entity

    def _mark_all_seen(self, entities: Iterable[T]) -> None:
        """:meth:`mark_seen` for each of ``entities`` (the multi-row reads' loop).

        Calls the unit of work's callback directly unless a subclass overrides
        :meth:`mark_seen`, and nothing at all without a unit of work.
        """
        if type(self).mark_seen is not RepositoryBase.mark_seen:
            for entity in entities:
                self.mark_seen(entity)
            return
        callback = self._seen_callback
        if callback is not _ignore:
            for entity in entities:
                callback(entity)

    @property
    def traits(self) -> ModelTraits:
        """Primary key and keel columns of :attr:`model`."""
        return model_traits(self.model)

    async def hard_delete(self, entity: T) -> None:
        """Delete the row for good."""
        raise NotImplementedError

    async def delete(self, entity: T) -> None:
        """Soft-delete (set ``deleted_at``) when the model supports it, else delete the row.

        A soft delete is an ordinary change: on flush ``version`` rises and
        ``updated_at`` moves, and a stale copy raises ``ConcurrencyError``.
        An entity loaded in another (closed) unit of work is attached to this
        one first, as :meth:`hard_delete` does, and saved with the version it
        was loaded at.
        """
        self._check_type(entity)
        deleted_at = self.traits.deleted_at
        if deleted_at is None:
            await self.hard_delete(entity)
            return
        self._attach(entity)
        self.mark_seen(entity)
        if getattr(entity, deleted_at) is None:
            setattr(entity, deleted_at, utcnow())

    async def restore(self, entity: T) -> T:
        """Undo a soft delete (load it with ``get(id, include_deleted=True)``).

        An entity from another unit of work is attached first, as for :meth:`delete`.
        """
        self._check_type(entity)
        deleted_at = self._require_soft_delete("restore")
        self._attach(entity)
        self.mark_seen(entity)
        setattr(entity, deleted_at, None)
        return entity

    # --- building blocks for subclasses -------------------------------------

    def select(
        self,
        *where: Condition,
        statement: Select[Any] | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> Select[T]:
        """``SELECT model`` (or ``statement``) with the conditions and the soft-delete rule applied.

        Live rows only by default (on SQL through the session-wide soft-delete
        criteria, which also reach relationship loads and joined soft-deletable
        models); ``include_deleted`` and ``only_deleted`` set the
        ``include_deleted`` execution option. Run it with :meth:`scalars` or
        :meth:`one_or_none`, or pass it to the reads as ``statement=``; the
        in-memory twin evaluates it in Python and refuses joins.
        """
        self._check_deleted_scope(include_deleted, only_deleted)
        stmt: Select[T] = select(self.model) if statement is None else self._shaped_statement(statement)
        deleted_at = self.traits.deleted_at
        if deleted_at is not None and (include_deleted or only_deleted):
            stmt = stmt.execution_options(**{INCLUDE_DELETED: True})
            if only_deleted:
                stmt = stmt.where(getattr(self.model, deleted_at).is_not(None))
        conditions = build_conditions(self.model, where, equals)
        if conditions:
            stmt = stmt.where(*conditions)
        return stmt

    def _shaped_statement(self, statement: Select[Any]) -> Select[Any]:
        """``statement`` checked as a ``select(model)`` this repository can run (its storage decides)."""
        raise NotImplementedError

    async def scalars(self, statement: Select[Any]) -> list[T]:
        """Run a ``select(model)`` statement; every entity it returns is marked seen."""
        raise NotImplementedError

    async def _scalars(self, stmt: Select[Any]) -> list[T]:
        """Deprecated alias of :meth:`scalars`."""
        warnings.warn("_scalars() is deprecated; use scalars()", DeprecationWarning, stacklevel=2)
        return await self.scalars(stmt)

    def _attach(self, entity: T) -> None:
        """Make an entity loaded elsewhere (detached) part of this unit of work, version-checked."""
        raise NotImplementedError

    def _check_deleted_scope(self, include_deleted: bool, only_deleted: bool) -> None:
        """``include_deleted``/``only_deleted`` need a model with soft delete.

        On any other model ``only_deleted=True`` would silently mean every
        row (none is marked deleted), so both are refused, like ``restore``.
        """
        if include_deleted or only_deleted:
            self._require_soft_delete("read only_deleted rows" if only_deleted else "include deleted rows")

    def _track(self, entity: T) -> T:
        """Deprecated alias of :meth:`mark_seen`."""
        warnings.warn("_track() is deprecated; use mark_seen()", DeprecationWarning, stacklevel=2)
        return self.mark_seen(entity)

    def _is_deleted(self, entity: object) -> bool:
        deleted_at = self.traits.deleted_at
        return deleted_at is not None and getattr(entity, deleted_at) is not None

    def _require_soft_delete(self, action: str) -> str:
        deleted_at = self.traits.deleted_at
        if deleted_at is None:
            raise ValidationError(
                f"{self.traits.entity} has no soft delete; cannot {action}",
                errors=[error("entity", "model has no deleted_at column")],
            )
        return deleted_at

    def _check_type(self, entity: object) -> None:
        if not isinstance(entity, self.model):
            raise ValidationError(
                f"{type(self).__name__} stores {self.model.__name__}, not {type(entity).__name__}",
                errors=[error("entity", f"expected {self.model.__name__}", "type_error")],
            )


def deleted_mode(include_deleted: bool, only_deleted: bool) -> str:
    """Which rows a read covers, as a cursor records it: ``live``, ``include_deleted`` or ``only_deleted``."""
    return "only_deleted" if only_deleted else "include_deleted" if include_deleted else "live"


def model_from_generic(cls: type) -> type[Any] | None:
    """The model ``M`` of a ``class R(SqlAlchemyRepository[M])`` (or of any repository base)."""
    for base in getattr(cls, "__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, RepositoryBase):
            args = get_args(base)
            if args and isinstance(args[0], type):
                return args[0]
    return None
