"""The cache in the SQL infrastructure: cache-aside reads for repositories, invalidation after commit.

:func:`read_through` is what ``SqlAlchemyRepository.get`` calls when the
repository sets ``cache_ttl``; :class:`CacheInvalidation` is the commit
participant a unit of work given ``cache=`` runs; :func:`cached_list` and
:func:`cached_page` are the opt-in caches for queries (public in
:mod:`keel.cache`).
"""

from __future__ import annotations

from keel.infrastructure.cache._participant import CacheInvalidation as CacheInvalidation
from keel.infrastructure.cache._participant import use_cache as use_cache
from keel.infrastructure.cache._reads import cached_list as cached_list
from keel.infrastructure.cache._reads import cached_page as cached_page
from keel.infrastructure.cache._reads import read_through as read_through
from keel.infrastructure.cache._tracking import bind_cache as bind_cache
