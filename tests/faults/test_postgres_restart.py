"""PostgreSQL restarted under a concurrent command load: typed failures, readiness follows, nothing committed lost."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import Command, CommandAlreadyHandledError, ConcurrencyError, DatabaseUnavailableError, MessageBus
from keel.config import DatabaseSettings
from keel.infrastructure.database import check_database, create_engine, create_session_factory
from keel.infrastructure.processed_commands import RecordProcessedCommands
from keel.service_layer import RetryPolicy
from tests.models import AppUnitOfWork, Counter
from tests.support.polling import eventually
from tests.support.postgres_cluster import PrivateCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKERS = 8
#: Load before the restart and after the server is back, in seconds.
LOAD_BEFORE = 0.5
LOAD_AFTER = 1.0
#: A short wait between attempts: the retries span a fast restart's refused connections only partly.
RETRY = RetryPolicy(
    max_attempts=3,
    initial_backoff=0.05,
    max_backoff=0.2,
    jitter=0.05,
    retry_on=(ConcurrencyError, DatabaseUnavailableError),
)


class OpenCounter(Command):
    counter_id: int


async def open_counter(cmd: OpenCounter, uow: AppUnitOfWork) -> None:
    async with uow:
        uow.counters.add(Counter(id=cmd.counter_id, value=0))
        await uow.commit()


@pytest.fixture
async def roomy_engine(cluster_engine: AsyncEngine, private_postgres: PrivateCluster) -> AsyncIterator[AsyncEngine]:
    """Room in the pool beside the workers: with every connection busy, readiness would wait its turn and
    report not-ready whatever the server's state (check_database's timeout covers the pool checkout)."""
    engine = create_engine(
        DatabaseSettings(
            url=private_postgres.url,
            command_timeout=5,
            connect_timeout=2,
            pool_size=WORKERS,
            max_connections=WORKERS + 4,
        )
    )
    yield engine
    await engine.dispose()


async def test_a_restart_under_load_fails_in_flight_commands_typed_and_loses_no_committed_one(
    roomy_engine: AsyncEngine, private_postgres: PrivateCluster
) -> None:
    """8 tasks issue commands while the server restarts fast: each succeeds or is DatabaseUnavailableError;
    readiness is false during the outage and true after; the same engine serves again; every success is stored."""
    factory = create_session_factory(roomy_engine)
    recorder = RecordProcessedCommands()
    bus = MessageBus(
        lambda: AppUnitOfWork(factory, participants=[recorder]),
        command_handlers={OpenCounter: open_counter},
        command_retry=RETRY,
    )
    ids = itertools.count(1)
    committed: set[int] = set()
    unavailable: list[int] = []
    served_after_restart: list[int] = []
    restarted_at: list[float] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            counter_id = next(ids)
            try:
                # The key makes a retry after a lost COMMIT reply a recognised repeat, not a duplicate key.
                await bus.handle(OpenCounter(counter_id=counter_id), idempotency_key=f"open-{counter_id}")
            except CommandAlreadyHandledError:
                committed.add(counter_id)
            except DatabaseUnavailableError:
                unavailable.append(counter_id)
                await asyncio.sleep(0.02)  # pacing, so the outage is not a busy loop
            else:
                committed.add(counter_id)
                if restarted_at:
                    served_after_restart.append(counter_id)

    async def ready() -> bool:
        return (await check_database(roomy_engine, timeout=1.0)).healthy

    async def not_ready() -> bool:
        return not await ready()

    workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    try:
        await eventually(lambda: len(committed) >= WORKERS, timeout=10)
        await asyncio.sleep(LOAD_BEFORE)  # load runs for a while: the restart lands on in-flight commands
        before = len(committed)
        await asyncio.to_thread(private_postgres.stop)  # SIGINT: a fast shutdown, sessions aborted
        await eventually(not_ready, timeout=5)
        await asyncio.to_thread(private_postgres.start)
        await eventually(ready, timeout=15)
        restarted_at.append(time.monotonic())
        await eventually(lambda: len(served_after_restart) >= WORKERS, timeout=15)
        await asyncio.sleep(LOAD_AFTER)
    finally:
        stop.set()
        outcomes = await asyncio.gather(*workers, return_exceptions=True)
    assert [o for o in outcomes if o is not None] == [], "a command failed with something other than unavailable"
    assert before > 0
    # A short restart is often covered by the retries alone; either way the outage met in-flight commands.
    assert unavailable or bus.stats.command_retries > 0, "no command met the outage"
    async with factory() as session:
        stored = set((await session.execute(select(Counter.id))).scalars())
    assert committed <= stored, f"committed but missing: {sorted(committed - stored)}"
    assert roomy_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
