"""``InMemoryCache``: the cache port in one process, LRU-bounded with TTLs.

The embedded default, and the cache for users' unit tests. It follows the
same protocol as :class:`~keel.cross_cutting.cache._redis.RedisCache`
(stamps, guards, writer holds), stores the same JSON text (so a value read
back is a copy, never the object stored), and is run through the same
contract tests. It is per process: with more than one process serving the
same database, use Redis, or each process keeps its own stale copies until
their TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from keel.cross_cutting.cache._codec import dumps, make_stamp, new_token, pack, unpack
from keel.cross_cutting.cache._stats import CacheStats
from keel.domain.ports import CacheEntry


class InMemoryCache:
    """A :class:`keel.domain.ports.Cache` in a dict: least recently used values go first past ``max_entries``."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        default_ttl: float = 300.0,
        lease: float = 10.0,
        generation_ttl: float = 86_400.0,
    ) -> None:
        self.max_entries = max_entries
        self.default_ttl = default_ttl
        self.lease = lease
        self.generation_ttl = generation_ttl
        self.stats = CacheStats()
        self._values: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._generations: dict[str, tuple[str, float]] = {}
        self._holds: dict[str, dict[str, float]] = {}
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, key: str) -> Any:
        entry = await self.lookup(key)
        return entry.value

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        self._store(key, pack(str(self._epoch), dumps(value)), ttl)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._values.pop(key, None)

    async def clear(self) -> None:
        self._epoch += 1
        self._values.clear()

    async def lookup(self, key: str, guards: Sequence[str] = ()) -> CacheEntry:
        now = time.monotonic()
        stamp = make_stamp(str(self._epoch), [self._generation(g, now) for g in guards])
        stored = self._values.get(key)
        if stored is not None and stored[1] <= now:
            del self._values[key]
            stored = None
        hit, value = unpack(stored[0] if stored else None, stamp)
        if hit:
            self._values.move_to_end(key)
        self.stats.count("hits" if hit else "misses")
        return CacheEntry(hit, value, stamp)

    async def fill(
        self, key: str, value: Any, entry: CacheEntry, guards: Sequence[str] = (), *, ttl: float | None = None
    ) -> bool:
        now = time.monotonic()
        held = any(self._held(g, now) for g in guards)
        if held or make_stamp(str(self._epoch), [self._generation(g, now) for g in guards]) != entry.stamp:
            self.stats.count("fills_refused")
            return False
        self._store(key, pack(entry.stamp, dumps(value)), ttl)
        self.stats.count("fills")
        return True

    async def begin_invalidation(self, guards: Sequence[str]) -> str:
        token = new_token()
        now = time.monotonic()
        for guard in guards:
            self._holds.setdefault(guard, {})[token] = now + self.lease
            self._generations[guard] = (new_token(), now + self.generation_ttl)
        return token

    async def end_invalidation(self, guards: Sequence[str], token: str) -> None:
        now = time.monotonic()
        for guard in guards:
            holds = self._holds.get(guard)
            if holds is not None:
                holds.pop(token, None)
                if not holds:
                    del self._holds[guard]
            self._generations[guard] = (new_token(), now + self.generation_ttl)
        self.stats.count("invalidations")

    async def close(self) -> None:
        self._values.clear()

    def _store(self, key: str, stored: str, ttl: float | None) -> None:
        # A value must not outlive the generations it was stamped with (see docs/cache.md).
        seconds = min(self.default_ttl if ttl is None else ttl, self.generation_ttl)
        self._values[key] = (stored, time.monotonic() + seconds)
        self._values.move_to_end(key)
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)

    def _generation(self, guard: str, now: float) -> str:
        found = self._generations.get(guard)
        if found is None or found[1] <= now:
            self._generations.pop(guard, None)
            return ""
        return found[0]

    def _held(self, guard: str, now: float) -> bool:
        holds = self._holds.get(guard)
        if not holds:
            return False
        for token, expires in list(holds.items()):
            if expires <= now:
                del holds[token]
        return bool(holds)
