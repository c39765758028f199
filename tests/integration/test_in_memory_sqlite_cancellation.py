"""In-memory SQLite keeps its only connection, and so its data, when queries are cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base
from tests.models import AppUnitOfWork, Counter

#: Slow enough (tens of milliseconds) that a cancellation lands while it runs.
SLOW_QUERY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 200000) SELECT count(*) FROM r"
ROUNDS = 40


@pytest.fixture
async def memory_engine() -> AsyncIterator[AsyncEngine]:
    """An in-memory database with keel's test tables and ten counters."""
    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite://"))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AppUnitOfWork(create_session_factory(engine)) as uow:
        for i in range(1, 11):
            uow.counters.add(Counter(id=i, value=0))
        await uow.commit()
    yield engine
    await engine.dispose()


async def counters(engine: AsyncEngine) -> list[int]:
    async with AppUnitOfWork(create_session_factory(engine)) as uow:
        return sorted(counter.id for counter in await uow.counters.list())


async def test_cancelling_a_query_mid_flight_many_times_keeps_every_table_and_row(memory_engine: AsyncEngine) -> None:
    """Each round cancels a unit of work while its slow query runs; the tables and rows are all still there."""
    started = asyncio.Event()

    def mark_started(*_: Any) -> None:
        started.set()

    event.listen(memory_engine.sync_engine, "before_cursor_execute", mark_started)
    factory = create_session_factory(memory_engine)

    async def slow_unit_of_work() -> None:
        async with AppUnitOfWork(factory) as uow:
            counter = await uow.counters.get(1)
            counter.value += 1
            await uow.session.flush()
            started.clear()
            await uow.session.execute(text(SLOW_QUERY))
            await uow.commit()

    for _ in range(ROUNDS):
        task = asyncio.create_task(slow_unit_of_work())
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        assert not task.done(), "the slow query is in flight"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await counters(memory_engine) == list(range(1, 11))

    async with AppUnitOfWork(factory) as uow:
        assert (await uow.counters.get(1)).value == 0, "every cancelled unit of work was rolled back"


@pytest.mark.parametrize("yields", range(12))
async def test_a_cancellation_at_any_point_of_a_unit_of_work_keeps_the_database(
    memory_engine: AsyncEngine, yields: int
) -> None:
    """Cancelled after 0..11 scheduler turns (checkout, query, flush, commit): the database survives."""
    factory = create_session_factory(memory_engine)

    async def unit_of_work() -> None:
        async with AppUnitOfWork(factory) as uow:
            counter = await uow.counters.get(2)
            counter.value += 1
            await uow.commit()

    for _ in range(5):
        task = asyncio.create_task(unit_of_work())
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await counters(memory_engine) == list(range(1, 11))
