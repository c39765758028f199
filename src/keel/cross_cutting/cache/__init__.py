"""The cache: the port's two implementations, their settings and the breaker.

Public names are re-exported by :mod:`keel.cache`; the repository
integration (cache-aside for ``get``, invalidation after commit) lives in
:mod:`keel.infrastructure.cache`, which needs SQLAlchemy.
"""

from __future__ import annotations

from keel.cross_cutting.cache._factory import cache_from_settings as cache_from_settings
from keel.cross_cutting.cache._factory import close_cache_at_shutdown as close_cache_at_shutdown
from keel.cross_cutting.cache._memory import InMemoryCache as InMemoryCache
from keel.cross_cutting.cache._redis import RedisCache as RedisCache
from keel.cross_cutting.cache._settings import CacheSettings as CacheSettings
from keel.cross_cutting.cache._stats import CacheStats as CacheStats
