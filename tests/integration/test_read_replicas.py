"""Read-only units of work against a real streaming replica: routing, fallback, read-your-writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.database.engine import create_replica_router
from keel.infrastructure.database.replicas import ReplicaRouter, commit_position, read_after
from keel.orm import Base
from tests.conftest import reset_schema
from tests.contract.models import ContractUnitOfWork, Item
from tests.support.postgres_cluster import ReplicatedPair

pytestmark = [pytest.mark.postgres, pytest.mark.replica]

#: Long enough for replication on loopback, short enough for a test that must time out.
WAIT = 0.5


@pytest.fixture
async def primary(replicated_postgres: ReplicatedPair) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=replicated_postgres.primary.url, pool_size=2, max_connections=10))
    await reset_schema(engine, Base.metadata)
    yield engine
    await engine.dispose()


@pytest.fixture
async def router(replicated_postgres: ReplicatedPair, primary: AsyncEngine) -> AsyncIterator[ReplicaRouter]:
    settings = DatabaseSettings(
        url=replicated_postgres.primary.url,
        replicas=[replicated_postgres.replica.url],
        pool_size=2,
        max_connections=10,
        read_your_writes_timeout=WAIT,
        replica_health_interval=60,
        replica_health_timeout=2,
    )
    found = create_replica_router(settings)
    assert found is not None
    # The primary fixture may have just created the tables: a test must not query the replica before it has them.
    await replica_caught_up(primary, found)
    yield found
    await found.dispose()


@pytest.fixture
def factory(primary: AsyncEngine, router: ReplicaRouter) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(primary, replicas=router)


@pytest.fixture
def replica_statements(router: ReplicaRouter) -> Iterator[list[str]]:
    """Every statement sent to the replica, upper-cased."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement.upper())

    [engine] = router.engines
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def in_recovery(uow: ContractUnitOfWork) -> bool:
    """True when the unit of work's session runs on the replica."""
    return bool(await uow.session.scalar(text("SELECT pg_is_in_recovery()")))


async def add_item(factory: async_sessionmaker[AsyncSession], name: str) -> int:
    async with ContractUnitOfWork(factory) as uow:
        item = Item(name=name)
        uow.items.add(item)
        assert not await in_recovery(uow)
        await uow.commit()
    return int(item.id)


async def replica_sees(router: ReplicaRouter, item_id: int) -> bool:
    [engine] = router.engines
    async with engine.connect() as conn:
        return bool(await conn.scalar(text("SELECT count(*) FROM repo_items WHERE id = :id"), {"id": item_id}))


async def wait_until_replicated(router: ReplicaRouter, item_id: int) -> None:
    deadline = time.monotonic() + 10
    while not await replica_sees(router, item_id):
        assert time.monotonic() < deadline, "the replica never replayed the row"
        await asyncio.sleep(0.01)


async def replica_caught_up(primary: AsyncEngine, router: ReplicaRouter) -> None:
    """Wait until the replica replayed everything the primary wrote so far (the fixture's TRUNCATE, say)."""
    async with primary.connect() as conn:
        position = await conn.scalar(text("SELECT pg_current_wal_lsn()::text"))
    [engine] = router.engines
    deadline = time.monotonic() + 10
    async with engine.connect() as conn:
        query = text("SELECT pg_last_wal_replay_lsn() >= CAST(CAST(:p AS TEXT) AS pg_lsn)")
        while not await conn.scalar(query, {"p": position}):
            assert time.monotonic() < deadline, "the replica never caught up"
            await conn.rollback()
            await asyncio.sleep(0.01)


async def test_read_only_units_of_work_read_from_the_replica(
    factory: async_sessionmaker[AsyncSession], router: ReplicaRouter
) -> None:
    """Without a commit in this context, a read-only unit of work runs on the replica; a writing one on the primary."""
    item_id = await add_item(factory, "lamp")
    await wait_until_replicated(router, item_id)
    with read_after(None):
        async with ContractUnitOfWork(factory, read_only=True) as uow:
            assert await in_recovery(uow)
            assert (await uow.items.get(item_id)).name == "lamp"
    assert router.stats.replica_reads == 1


async def test_with_the_replica_stopped_reads_keep_succeeding_on_the_primary(
    replicated_postgres: ReplicatedPair, factory: async_sessionmaker[AsyncSession], router: ReplicaRouter
) -> None:
    """A replica that went down is marked unhealthy at the next connection; reads fall back to the primary."""
    item_id = await add_item(factory, "lamp")
    await wait_until_replicated(router, item_id)
    with read_after(None):
        async with ContractUnitOfWork(factory, read_only=True) as uow:
            assert await in_recovery(uow)  # a pooled connection to the replica now exists
    replicated_postgres.replica.stop()
    try:
        with read_after(None):
            for _ in range(3):
                async with ContractUnitOfWork(factory, read_only=True) as uow:
                    assert not await in_recovery(uow)
                    assert (await uow.items.get(item_id)).name == "lamp"
        assert router.stats.marked_unhealthy == 1
        assert router.stats.primary_reads == 3
    finally:
        replicated_postgres.replica.start()


async def test_read_your_writes_under_paused_replay(
    primary: AsyncEngine, factory: async_sessionmaker[AsyncSession], router: ReplicaRouter
) -> None:
    """Replay paused: after a commit a read-only uow still sees it (primary); without one it reads the replica."""
    await replica_caught_up(primary, router)  # pausing mid-transaction would leave its locks held
    [replica] = router.engines
    async with replica.connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_pause()"))
        await conn.commit()
    try:
        item_id = await add_item(factory, "lamp")
        assert commit_position() is not None
        async with ContractUnitOfWork(factory, read_only=True) as uow:
            assert (await uow.items.get(item_id)).name == "lamp"
            assert not await in_recovery(uow)
        assert router.stats.read_your_writes_timeouts == 1
        with read_after(None):
            async with ContractUnitOfWork(factory, read_only=True) as uow:
                assert await in_recovery(uow)
                assert await uow.items.get_or_none(item_id) is None  # the replica has not replayed it
    finally:
        async with replica.connect() as conn:
            await conn.execute(text("SELECT pg_wal_replay_resume()"))
            await conn.commit()


async def test_read_your_writes_waits_for_the_replica_under_normal_replication(
    factory: async_sessionmaker[AsyncSession], router: ReplicaRouter
) -> None:
    """Right after a commit, a read-only uow waits for the replica to replay it, then reads it there."""
    for name in ("lamp", "desk", "chair"):
        item_id = await add_item(factory, name)
        async with ContractUnitOfWork(factory, read_only=True) as uow:
            assert await in_recovery(uow)
            assert (await uow.items.get(item_id)).name == name
    assert router.stats.read_your_writes_waits == 3
    assert router.stats.read_your_writes_timeouts == 0


async def test_no_write_ever_reaches_the_replica(
    factory: async_sessionmaker[AsyncSession], router: ReplicaRouter, replica_statements: list[str]
) -> None:
    """Writing units of work run on the primary; the replica only ever receives reads."""
    for name in ("lamp", "desk"):
        item_id = await add_item(factory, name)
        async with ContractUnitOfWork(factory) as uow:
            (await uow.items.get(item_id)).rename(f"{name}!")
            await uow.commit()
        async with ContractUnitOfWork(factory, read_only=True) as uow:
            assert (await uow.items.get(item_id)).name == f"{name}!"
    assert replica_statements, "the replica served no reads"
    assert not [s for s in replica_statements if s.lstrip().startswith(("INSERT", "UPDATE", "DELETE"))]


async def test_replicas_take_turns(replicated_postgres: ReplicatedPair, primary: AsyncEngine) -> None:
    """Reads go round-robin over the healthy replicas (here two engines on the one replica)."""
    url = replicated_postgres.replica.url
    engines = [create_engine(DatabaseSettings(url=url, pool_size=1, max_connections=2)) for _ in range(2)]
    router = ReplicaRouter(engines, health_interval=60)
    try:
        with read_after(None):
            chosen = [await router.engine_for_read() for _ in range(4)]
        assert chosen == [engines[0], engines[1], engines[0], engines[1]]
        assert all(lag >= 0 for lag in router.stats.lag_seconds.values())
    finally:
        await router.dispose()
