"""The two kinds of page a repository returns (pure data: the ports in :mod:`keel.domain.ports` return them).

:class:`Page` is an offset page: it knows the total and can jump to page N,
but a deep page costs the database every row it skips. :class:`CursorPage` is
a keyset page: no total and no jumping, but page 10,000 costs what page 1
costs, and rows inserted meanwhile never shift it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One offset page: ``items`` plus where it sits among ``total`` matching rows."""

    items: list[T]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        """How many pages ``total`` rows make (0 when there are none)."""
        return -(-self.total // self.size) if self.size else 0

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_dict(self) -> dict[str, Any]:
        """The page's metadata and items, ready for a JSON response."""
        return {
            "items": self.items,
            "total": self.total,
            "page": self.page,
            "size": self.size,
            "pages": self.pages,
            "has_next": self.has_next,
            "has_previous": self.has_previous,
        }


@dataclass(frozen=True, slots=True)
class CursorPage(Generic[T]):
    """One keyset page; pass ``next_cursor``/``previous_cursor`` back to move.

    A cursor is ``None`` when there is nothing in that direction.
    """

    items: list[T]
    size: int
    next_cursor: str | None = None
    previous_cursor: str | None = None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_dict(self) -> dict[str, Any]:
        """The page's cursors and items, ready for a JSON response."""
        return {
            "items": self.items,
            "size": self.size,
            "next_cursor": self.next_cursor,
            "previous_cursor": self.previous_cursor,
            "has_next": self.has_next,
            "has_previous": self.has_previous,
        }
