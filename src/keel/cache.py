"""The cache: a port, Redis and in-memory implementations, and cache-aside for repositories.

.. code-block:: python

    class ProductRepository(SqlAlchemyRepository[Product]):
        cache_ttl = 60                     # get() reads through the unit of work's cache

    uow = AppUnitOfWork(session_factory, cache=RedisCache("redis://127.0.0.1:6379/0"))

Entities a unit of work changes or deletes are invalidated after its commit,
without letting a concurrent reader put an older value back; see
docs/cache.md.

.. versionadded:: 0.2
"""

from __future__ import annotations

from keel.cross_cutting.cache import CacheStats, InMemoryCache, RedisCache
from keel.domain.ports import Cache
from keel.infrastructure.cache import CacheInvalidation, cached_list, cached_page

__all__ = [
    "Cache",
    "CacheInvalidation",
    "CacheStats",
    "InMemoryCache",
    "RedisCache",
    "cached_list",
    "cached_page",
]
