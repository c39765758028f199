"""The container's cache: KEEL_CACHE__BACKEND picks it, every unit of work gets it, shutdown closes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dependency_injector import providers

from keel import ConfigurationError
from keel.cache import InMemoryCache, RedisCache
from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.infrastructure.cache import CacheInvalidation
from tests.support.redis_server import shared_redis_url


def container_for(tmp_path: Path, **cache: object) -> KeelContainer:
    container = KeelContainer()
    settings = KeelSettings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"}, cache=cache)
    container.settings.override(providers.Object(settings))
    return container


async def test_the_default_is_one_in_memory_cache_shared_by_every_unit_of_work(tmp_path: Path) -> None:
    """backend=memory: one InMemoryCache, handed to each unit of work with its invalidation participant last."""
    async with running(container_for(tmp_path)) as container:
        first, second = container.unit_of_work(), container.unit_of_work()
        assert isinstance(first.cache, InMemoryCache)
        assert first.cache is second.cache
        assert isinstance(first.participants[-1], CacheInvalidation)


async def test_backend_none_gives_units_of_work_no_cache(tmp_path: Path) -> None:
    """backend=none: no cache, no invalidation participant."""
    async with running(container_for(tmp_path, backend="none")) as container:
        uow = container.unit_of_work()
        assert uow.cache is None
        assert not any(isinstance(p, CacheInvalidation) for p in uow.participants)


async def test_backend_redis_builds_a_redis_cache_from_the_settings(tmp_path: Path) -> None:
    """backend=redis with a URL and namespace: a RedisCache that works, closed at shutdown."""
    container = container_for(tmp_path, backend="redis", url=shared_redis_url(), namespace="keel-container-test")
    async with running(container):
        cache = container.cache()
        assert isinstance(cache, RedisCache)
        assert cache.namespace == "keel-container-test"
        await cache.set("k", 1)
        assert await cache.get("k") == 1
        await cache.clear()


def test_a_redis_url_with_a_password_never_shows(tmp_path: Path) -> None:
    """The settings and the cache's repr mask the password of KEEL_CACHE__URL."""
    settings = KeelSettings(cache={"backend": "redis", "url": "redis://user:hunter2@cache.internal:6380/2"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(RedisCache(settings.cache.url.get_secret_value()))


def test_an_unknown_backend_is_refused() -> None:
    """KEEL_CACHE__BACKEND must be memory, redis or none."""
    with pytest.raises(ConfigurationError, match="KEEL_CACHE__BACKEND"):
        KeelSettings(cache={"backend": "memcached"})
