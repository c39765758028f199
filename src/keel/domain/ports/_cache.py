"""The cache port: :class:`Cache` and what a lookup finds (:class:`CacheEntry`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What :meth:`Cache.lookup` found: the value (on a hit) and the stamp a later fill must present.

    The stamp is opaque: the generations of the lookup's guards (and of the
    whole cache) when it read them. A fill made with it is refused if any of
    them moved since, so a reader cannot put back a value older than a write
    that finished during its read.
    """

    hit: bool
    value: Any
    stamp: str


class Cache(Protocol):
    """A shared cache of JSON values with TTLs, and race-free cache-aside on top of it.

    Values are JSON-compatible (``dict``, ``list``, ``str``, numbers, booleans,
    ``None``) or pydantic models (stored as their JSON dump); what comes back is
    always a fresh copy. Keys live in the cache's namespace. An unavailable
    backend never raises: reads miss, writes are dropped, and the failure is
    logged and counted (``stats``). Implementations: ``keel.cache.RedisCache``
    and ``keel.cache.InMemoryCache``.

    Cache-aside that cannot serve stale data works with *guards*, names of
    what a value depends on (an entity, a model's lists): :meth:`lookup`
    returns a stamp of the guards' generations, :meth:`fill` stores only if
    that stamp is still current and no writer holds a guard, and a writer
    brackets its commit with :meth:`begin_invalidation` (before) and
    :meth:`end_invalidation` (after). See docs/cache.md for the argument.
    """

    async def get(self, key: str) -> Any:
        """The value under ``key``, or None when absent or expired."""
        ...

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: the cache's default TTL)."""
        ...

    async def delete(self, *keys: str) -> None:
        """Drop these keys."""
        ...

    async def clear(self) -> None:
        """Drop every value of the namespace."""
        ...

    async def lookup(self, key: str, guards: Sequence[str] = ()) -> CacheEntry:
        """The value under ``key`` if it was stored with the guards' current generations."""
        ...

    async def fill(
        self, key: str, value: Any, entry: CacheEntry, guards: Sequence[str] = (), *, ttl: float | None = None
    ) -> bool:
        """Store ``value`` if ``entry``'s stamp is still current and no writer holds a guard; whether it did."""
        ...

    async def begin_invalidation(self, guards: Sequence[str]) -> str:
        """A writer is about to commit changes behind ``guards``: hold them (fills refused); returns a token."""
        ...

    async def end_invalidation(self, guards: Sequence[str], token: str) -> None:
        """The writer committed (or gave up): release its hold and move the guards' generations on."""
        ...

    async def close(self) -> None:
        """Release the cache's connections."""


# --- the event store ----------------------------------------------------------------------
