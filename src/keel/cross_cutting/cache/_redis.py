"""``RedisCache``: the cache port on Redis (redis.asyncio), pooled, namespaced, degrading quietly.

Every call is bounded: short socket and pool timeouts, no client-side
retries, and a circuit breaker that stops trying for a few seconds after
consecutive failures, so an outage costs a request at most one short timeout
(a refused connection costs nothing) and then nothing at all. A failed or
skipped call is a miss (reads) or a dropped write; it is logged and counted
in :attr:`RedisCache.stats`, never raised.

A failed invalidation would leave a stale value behind; so the cache
remembers it and, on the first call that reaches Redis again, moves the
namespace's epoch on, which invalidates every value stored before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from keel.cross_cutting.cache import _scripts
from keel.cross_cutting.cache._breaker import CircuitBreaker
from keel.cross_cutting.cache._codec import dumps, make_stamp, new_token, unpack
from keel.cross_cutting.cache._stats import CacheStats
from keel.cross_cutting.error import ConfigurationError
from keel.domain.ports import CacheEntry

_logger = logging.getLogger("keel.cache")
R = TypeVar("R")


class RedisCache:
    """A :class:`keel.domain.ports.Cache` on Redis 7+ (one server or a primary; not Redis Cluster)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "keel",
        default_ttl: float = 300.0,
        timeout: float = 0.25,
        max_connections: int = 50,
        lease: float = 10.0,
        generation_ttl: float = 86_400.0,
        breaker_threshold: int = 3,
        breaker_reset: float = 5.0,
    ) -> None:
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - the dev extra installs redis
            raise ConfigurationError("RedisCache needs redis: pip install 'keel-framework[redis]'") from exc
        self.namespace = namespace
        self.default_ttl = default_ttl
        self.lease = lease
        self.generation_ttl = generation_ttl
        self.stats = CacheStats()
        self._where = _safe_location(url)
        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        # No client-side retries: the breaker decides when to try again, and a
        # retry with backoff is exactly the multi-second stall this avoids.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._client = Redis.from_pool(pool)  # owns the pool: aclose() disconnects it
        # A backstop over the socket and pool timeouts (a DNS lookup has none).
        self._deadline = timeout * 4
        self._breaker = CircuitBreaker(threshold=breaker_threshold, reset_after=breaker_reset)
        self._lost_invalidation = False
        self._epoch_key = f"{namespace}:epoch"
        self._set = self._client.register_script(_scripts.SET)
        self._fill = self._client.register_script(_scripts.FILL)
        self._begin = self._client.register_script(_scripts.BEGIN)
        self._end = self._client.register_script(_scripts.END)

    def __repr__(self) -> str:
        return f"RedisCache({self._where!r}, namespace={self.namespace!r})"

    @property
    def breaker_open(self) -> bool:
        """Whether calls are being skipped because Redis failed repeatedly."""
        return self._breaker.is_open

    # --- plain values ---------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        return (await self.lookup(key)).value

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        keys = [self._value(key), self._epoch_key]
        args: list[str | int] = [dumps(value), self._ms(ttl)]
        await self._call("set", lambda: self._set(keys=keys, args=args), None)

    async def delete(self, *keys: str) -> None:
        if keys:
            names = [self._value(k) for k in keys]
            await self._call("delete", lambda: self._client.delete(*names), None, invalidates=True)

    async def clear(self) -> None:
        await self._call("clear", lambda: self._client.incr(self._epoch_key), None, invalidates=True)

    # --- cache-aside ------------------------------------------------------------------------

    async def lookup(self, key: str, guards: Sequence[str] = ()) -> CacheEntry:
        names = [self._value(key), self._epoch_key, *(self._generation(g) for g in guards)]
        found = await self._call("lookup", lambda: self._client.mget(names), None)
        if found is None:
            self.stats.count("misses")
            return CacheEntry(False, None, "")  # an empty stamp never matches: nothing gets filled
        stamp = make_stamp(found[1], found[2:])
        hit, value = unpack(found[0], stamp)
        self.stats.count("hits" if hit else "misses")
        return CacheEntry(hit, value, stamp)

    async def fill(
        self, key: str, value: Any, entry: CacheEntry, guards: Sequence[str] = (), *, ttl: float | None = None
    ) -> bool:
        if not entry.stamp:
            return False
        payload = dumps(value)
        keys = [self._value(key), self._epoch_key, *self._guard_keys(guards)]
        stored = await self._call("fill", lambda: self._fill(keys=keys, args=[entry.stamp, payload, self._ms(ttl)]), 0)
        self.stats.count("fills" if stored else "fills_refused")
        return bool(stored)

    async def begin_invalidation(self, guards: Sequence[str]) -> str:
        token = new_token()
        if guards:
            keys = self._guard_keys(guards)
            args: list[str | int] = [token, int(self.lease * 1000), int(self.generation_ttl * 1000), new_token()]
            await self._call("hold", lambda: self._begin(keys=keys, args=args), None, invalidates=True)
        return token

    async def end_invalidation(self, guards: Sequence[str], token: str) -> None:
        if guards:
            keys = self._guard_keys(guards)
            args: list[str | int] = [token, int(self.generation_ttl * 1000), new_token()]
            await self._call("invalidate", lambda: self._end(keys=keys, args=args), None, invalidates=True)
            self.stats.count("invalidations")

    async def close(self) -> None:
        await self._client.aclose()

    # --- plumbing ---------------------------------------------------------------------------

    async def _call(self, what: str, call: Callable[[], Awaitable[R]], fallback: R, *, invalidates: bool = False) -> R:
        if not self._breaker.allow():
            self.stats.count("short_circuited")
            self._lost_invalidation |= invalidates
            return fallback
        try:
            async with asyncio.timeout(self._deadline):
                if self._lost_invalidation:
                    await self._recover()
                result = await call()
        except self._failures as exc:
            self._failed(what, exc)
            self._lost_invalidation |= invalidates
            return fallback
        if self._breaker.succeeded():
            _logger.warning("cache: Redis at %s answers again; using the cache", self._where)
        return result

    async def _recover(self) -> None:
        # Invalidations were lost while Redis was away: every value stored
        # before may be stale, so none may be served again. Moving the epoch
        # on comes before anything else this cache does with Redis.
        await self._client.incr(self._epoch_key)
        self._lost_invalidation = False
        _logger.warning("cache: invalidations were lost while Redis was away; namespace %r flushed", self.namespace)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.stats.count("errors")
        if self._breaker.failed():
            self.stats.count("breaker_opened")
            _logger.warning(
                "cache: Redis at %s failed %d times in a row (%s); reading from the database for %.1f s",
                self._where,
                self._breaker.threshold,
                type(exc).__name__,
                self._breaker.reset_after,
            )
        elif not self._breaker.is_open:
            _logger.warning("cache: %s on Redis at %s failed (%s); falling back", what, self._where, type(exc).__name__)

    def _ms(self, ttl: float | None) -> int:
        # A value must not outlive the generations it was stamped with (see docs/cache.md).
        seconds = min(self.default_ttl if ttl is None else ttl, self.generation_ttl)
        return max(1, int(seconds * 1000))

    def _value(self, key: str) -> str:
        return f"{self.namespace}:v:{key}"

    def _generation(self, guard: str) -> str:
        return f"{self.namespace}:g:{guard}"

    def _guard_keys(self, guards: Sequence[str]) -> list[str]:
        keys: list[str] = []
        for guard in guards:
            keys += [self._generation(guard), f"{self.namespace}:h:{guard}"]
        return keys


def _safe_location(url: str) -> str:
    """``host:port/db`` of a Redis URL, without user or password (for logs and reprs)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"
