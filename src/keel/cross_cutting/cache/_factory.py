"""Build the configured cache (the container's ``cache`` provider)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from keel.cross_cutting.cache._memory import InMemoryCache
from keel.cross_cutting.cache._redis import RedisCache
from keel.cross_cutting.cache._settings import CacheSettings
from keel.domain.ports import Cache


def cache_from_settings(settings: CacheSettings) -> Cache | None:
    """The cache ``KEEL_CACHE__*`` asks for; None for ``backend=none``."""
    if settings.backend == "none":
        return None
    if settings.backend == "memory":
        return InMemoryCache(max_entries=settings.max_entries, default_ttl=settings.default_ttl, lease=settings.lease)
    return RedisCache(
        settings.url.get_secret_value(),
        namespace=settings.namespace,
        default_ttl=settings.default_ttl,
        timeout=settings.timeout,
        max_connections=settings.max_connections,
        lease=settings.lease,
        breaker_threshold=settings.breaker_threshold,
        breaker_reset=settings.breaker_reset,
    )


async def close_cache_at_shutdown(cache: Cache | None) -> AsyncIterator[Cache | None]:
    """A resource that closes ``cache``'s connections when the container's resources shut down."""
    try:
        yield cache
    finally:
        if cache is not None:
            await cache.close()
