"""Redis unavailable: a closed port, a server killed mid-run, a frozen one. Reads fall through, quickly, quietly.

Each test runs its own ``redis-server`` on a free port (or none at all);
the shared server on 6379 is never stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.cache import RedisCache
from tests.integration.cache_models import Gadget, GadgetUnitOfWork
from tests.support.postgres_cluster import free_port
from tests.support.redis_server import PrivateRedis
from tests.support.redis_server import private_redis as private_redis

#: Far above one short timeout (0.25 s), far below a multi-second stall.
SLOWEST_READ = 1.5


@pytest.fixture
async def closed_port_cache() -> AsyncIterator[RedisCache]:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", breaker_reset=60)
    yield cache
    await cache.close()


async def read(session_factory: async_sessionmaker[AsyncSession], cache: RedisCache, sku: str = "LAMP") -> Any:
    started = time.monotonic()
    async with GadgetUnitOfWork(session_factory, cache=cache) as uow:
        gadget = await uow.gadgets.get(sku)
    elapsed = time.monotonic() - started
    assert elapsed < SLOWEST_READ, f"a read took {elapsed:.2f} s"
    return gadget.stock, gadget.version


async def write(session_factory: async_sessionmaker[AsyncSession], cache: RedisCache, stock: int) -> None:
    async with GadgetUnitOfWork(session_factory, cache=cache) as uow:
        (await uow.gadgets.get("LAMP")).stock = stock
        await uow.commit()


async def seed(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with GadgetUnitOfWork(session_factory) as uow:
        uow.gadgets.add(Gadget(sku="LAMP", stock=5))
        await uow.commit()


async def test_a_closed_port_reads_and_writes_from_the_database_with_a_log_line_and_a_count(
    session_factory: async_sessionmaker[AsyncSession], closed_port_cache: RedisCache, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens: every read and write succeeds, the breaker opens, errors are logged and counted."""
    await seed(session_factory)
    with caplog.at_level(logging.WARNING, logger="keel.cache"):
        for stock in range(10):
            await write(session_factory, closed_port_cache, stock)
            assert await read(session_factory, closed_port_cache) == (stock, stock + 2)
    stats = closed_port_cache.stats
    assert stats.errors >= 3
    assert stats.breaker_opened == 1
    assert stats.short_circuited > 0
    assert closed_port_cache.breaker_open
    assert any("reading from the database" in r.getMessage() for r in caplog.records)
    assert len(caplog.records) <= 4  # a few lines, not one per request


async def test_redis_killed_mid_run_degrades_to_the_database_and_recovers(
    session_factory: async_sessionmaker[AsyncSession], private_redis: PrivateRedis
) -> None:
    """Warm cache, server killed: reads still succeed and are right; restarted, the cache serves again."""
    await seed(session_factory)
    cache = RedisCache(private_redis.url, breaker_reset=0.2)
    try:
        await read(session_factory, cache)
        await read(session_factory, cache)
        assert cache.stats.hits == 1
        private_redis.stop()
        for stock in (7, 8, 9):
            await write(session_factory, cache, stock)
            assert (await read(session_factory, cache))[0] == stock
        assert cache.stats.errors > 0
        private_redis.start()
        hits = cache.stats.hits
        deadline = time.monotonic() + 10
        while cache.stats.hits == hits and time.monotonic() < deadline:
            assert (await read(session_factory, cache))[0] == 9
        assert cache.stats.hits > hits
        assert not cache.breaker_open
    finally:
        await cache.close()


async def test_a_frozen_redis_costs_one_short_timeout_and_its_lost_invalidations_flush_the_namespace(
    session_factory: async_sessionmaker[AsyncSession], private_redis: PrivateRedis
) -> None:
    """SIGSTOP: reads wait one short timeout at most; a write made meanwhile is never hidden by the old value."""
    await seed(session_factory)
    cache = RedisCache(private_redis.url, timeout=0.2, breaker_reset=0.3)
    try:
        await read(session_factory, cache)
        assert await read(session_factory, cache) == (5, 1)  # cached now
        private_redis.freeze()
        started = time.monotonic()
        await write(session_factory, cache, 6)  # its invalidation cannot reach Redis
        for _ in range(5):
            assert await read(session_factory, cache) == (6, 2)
        assert time.monotonic() - started < 6 * SLOWEST_READ
        assert cache.breaker_open
        private_redis.thaw()
        hits = cache.stats.hits
        deadline = time.monotonic() + 10
        while cache.stats.hits == hits and time.monotonic() < deadline:
            assert await read(session_factory, cache) == (6, 2)  # never the (5, 1) still stored in Redis
    finally:
        private_redis.thaw()
        await cache.close()
