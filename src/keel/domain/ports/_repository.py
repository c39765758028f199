"""The repository ports: :class:`Repository` and :class:`UnitOfWorkRepository` (see :mod:`keel.domain.ports`)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

from keel.domain.pages import CursorPage, Page

T = TypeVar("T")


class Repository(Protocol[T]):
    """The repository surface of DESIGN.md, over aggregates of type ``T``.

    ``where`` conditions and ``order_by`` keys are whatever the
    implementation takes (SQLAlchemy expressions and keel filters for the
    SQL repository and its twin), so they are typed loosely here.
    """

    def add(self, entity: T) -> T:
        """Add a new entity; it is stored on commit."""
        ...

    def add_many(self, entities: Iterable[T]) -> builtins.list[T]:
        """Add many new entities."""
        ...

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
        """The entity with this key; ``NotFoundError`` if absent.

        ``load``: loader options for this call; ``for_update`` (``nowait``,
        ``skip_locked``): lock the row until the transaction ends, where the
        backend has row locks.
        """
        ...

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
        """The entity with this key, or None."""
        ...

    async def get_many(
        self, ids: Iterable[Any], *, include_deleted: bool = False, load: Sequence[Any] = ()
    ) -> builtins.list[T]:
        """The entities with these keys, in the order asked; missing ones skipped."""
        ...

    async def get_or_create(self, defaults: Mapping[str, Any] | None = None, **keys: Any) -> tuple[T, bool]:
        """The live entity matching ``keys``, else a new one from ``keys`` and ``defaults``; and whether it is new.

        Safe under concurrency: racing callers get one entity and no error.
        """
        ...

    async def upsert(self, entity: T, conflict: Sequence[str] | None = None) -> T:
        """Insert ``entity``'s row, or update the row it conflicts with on ``conflict`` (default: the key)."""
        ...

    async def list(
        self,
        *where: Any,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> builtins.list[T]:
        """Entities matching every condition."""
        ...

    async def list_and_count(
        self,
        *where: Any,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> tuple[builtins.list[T], int]:
        """The entities of ``list`` and how many match in all (limit and offset aside)."""
        ...

    async def count(self, *where: Any, include_deleted: bool = False, only_deleted: bool = False, **equals: Any) -> int:
        """How many entities match."""
        ...

    async def exists(
        self, *where: Any, include_deleted: bool = False, only_deleted: bool = False, **equals: Any
    ) -> bool:
        """Whether any entity matches."""
        ...

    async def paginate(
        self,
        *where: Any,
        page: int = 1,
        size: int | None = None,
        order_by: Any = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> Page[T]:
        """One offset page."""
        ...

    async def paginate_by_cursor(
        self,
        *where: Any,
        cursor: str | None = None,
        size: int | None = None,
        order_by: Any = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> CursorPage[T]:
        """One keyset page."""
        ...

    async def delete(self, entity: T) -> None:
        """Soft-delete when the model supports it, else delete for good."""
        ...

    async def restore(self, entity: T) -> T:
        """Undo a soft delete."""
        ...

    async def hard_delete(self, entity: T) -> None:
        """Delete for good."""
        ...


class UnitOfWorkRepository(Protocol):
    """A repository class a unit of work can build for itself.

    ``uow`` is the open unit of work (its session, workspace or store is
    the implementation's business); ``model`` is the type argument of the
    declaration (``products: SqlAlchemyRepository[Product]``), or None when
    the class names its model itself.
    """

    @classmethod
    def for_unit_of_work(cls, uow: Any, model: type[Any] | None = None) -> Self:
        """A repository bound to ``uow``'s transaction, reporting what it hands out as seen."""
        ...


def builds_from_unit_of_work(candidate: object) -> bool:
    """Whether ``candidate`` is a class a unit of work can declare (see :class:`UnitOfWorkRepository`)."""
    return isinstance(candidate, type) and callable(getattr(candidate, "for_unit_of_work", None))
