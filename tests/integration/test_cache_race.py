"""The acceptance test of the cache: concurrent readers never get a version older than the last committed.

Against PostgreSQL and the shared Redis. One writer commits new versions of
one entity, round after round; many reader tasks, each in its own unit of
work with the cache, read it at the same time. A participant of the writer
records each version the moment its transaction has committed (before the
cache's own after-commit step runs), so a reader whose read began later must
see that version or a newer one, whether the value came from Redis or from
the database.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import DomainEvent, Participant
from keel.cache import RedisCache
from tests.integration.cache_models import Gadget, GadgetUnitOfWork
from tests.support.redis_server import shared_redis_url

READERS = 16
WRITES = 50


class SlowFills(RedisCache):
    """The readers' cache: a few milliseconds pass between the database read and the fill.

    That is the classic race's window (a reader loads the old row, a writer
    commits and invalidates, the reader puts the old row back), widened so
    that 50 commits hit it many times: with a fill that ignores the stamp,
    this test fails.
    """

    async def fill(self, *args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(random.uniform(0, 0.01))
        return await super().fill(*args, **kwargs)


class RecordCommitted(Participant[Any]):
    """Publishes the version a commit made, right after the database committed it."""

    def __init__(self) -> None:
        self.version = 0
        self.pending = 0

    async def before_flush(self, uow: Any, events: Sequence[DomainEvent]) -> None:
        self.pending = uow.gadgets_seen_version()

    async def after_commit(self, uow: Any, events: Sequence[DomainEvent]) -> None:
        self.version = self.pending


class WriterUnitOfWork(GadgetUnitOfWork):
    def gadgets_seen_version(self) -> int:
        [gadget] = [g for g in self.seen if isinstance(g, Gadget)]
        return int(gadget.version) + 1  # the flush about to run raises it by one


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_concurrent_readers_never_see_a_version_older_than_the_last_committed(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """16 reader tasks against 50 commits: no read returns a version committed before it began, and the cache serves."""
    namespace = f"keel-race-{uuid.uuid4().hex[:8]}"
    cache = SlowFills(shared_redis_url(), namespace=namespace)
    writer_cache = RedisCache(shared_redis_url(), namespace=namespace)  # another process's, in effect
    record = RecordCommitted()
    try:
        async with GadgetUnitOfWork(session_factory, cache=cache) as uow:
            uow.gadgets.add(Gadget(sku="HOT", stock=0))
            await uow.commit()
        record.version = 1
        done = asyncio.Event()
        stale: list[tuple[int, int]] = []
        reads = 0

        async def writer() -> None:
            uow = WriterUnitOfWork(session_factory, participants=[record], cache=writer_cache)
            for _ in range(WRITES):
                async with uow:
                    (await uow.gadgets.get("HOT")).stock += 1
                    await uow.commit()
                await asyncio.sleep(0)  # let readers in between commits too
            done.set()

        async def reader() -> None:
            nonlocal reads
            uow = GadgetUnitOfWork(session_factory, cache=cache)
            while not done.is_set():
                floor = record.version
                async with uow:
                    version = (await uow.gadgets.get("HOT")).version
                reads += 1
                if version < floor:
                    stale.append((version, floor))

        async with asyncio.timeout(120):
            await asyncio.gather(writer(), *(reader() for _ in range(READERS)))
        assert stale == []
        assert record.version == WRITES + 1
        assert reads > WRITES
        assert cache.stats.hits > 0, cache.stats
        assert cache.stats.fills_refused > 0, cache.stats  # readers did race the writer
        assert cache.stats.errors == 0, cache.stats
    finally:
        await cache.clear()
        await cache.close()
        await writer_cache.close()
