"""Redis stopped and started while requests read and write through the cache: no request fails."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.cache import RedisCache
from tests.integration.test_cache_redis_faults import read, seed, write
from tests.support.polling import eventually
from tests.support.redis_server import PrivateRedis
from tests.support.redis_server import private_redis as private_redis

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

READERS = 6


async def test_requests_through_the_cache_all_succeed_while_redis_is_killed_and_restarted(
    session_factory: async_sessionmaker[AsyncSession], private_redis: PrivateRedis
) -> None:
    """Six readers and a writer run throughout: none fails, reads are never stale, the cache serves again after."""
    await seed(session_factory)
    cache = RedisCache(private_redis.url, timeout=0.2, breaker_reset=0.2)
    stop = asyncio.Event()
    requests = 0
    written: list[int] = [5]

    async def reader() -> None:
        nonlocal requests
        while not stop.is_set():
            before = written[-1]
            stock, _ = await read(session_factory, cache)
            assert stock >= before, "a read returned a value older than a committed write"
            requests += 1

    async def writer() -> None:
        nonlocal requests
        stock = 5
        while not stop.is_set():
            stock += 1
            await write(session_factory, cache, stock)
            written.append(stock)
            requests += 1
            await asyncio.sleep(0.05)  # pacing: reads outnumber writes, as in a service

    tasks = [asyncio.create_task(reader()) for _ in range(READERS)] + [asyncio.create_task(writer())]
    try:
        await eventually(lambda: cache.stats.hits > 0, timeout=10)
        private_redis.stop()
        served_down = requests
        await eventually(lambda: requests > served_down + 50 and cache.stats.errors > 0, timeout=15)
        private_redis.start()
        hits = cache.stats.hits
        await eventually(lambda: cache.stats.hits > hits + 10, timeout=15)
    finally:
        stop.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await cache.close()
    assert [o for o in outcomes if o is not None] == [], "a request failed"
    assert not cache.breaker_open
