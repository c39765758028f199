"""How the replica router decides without a live replica: down replicas, unknown commit positions, no wait."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.database.engine import create_replica_router
from keel.infrastructure.database.replicas import PRIMARY_ONLY, ReplicaRouter, commit_position, read_after
from tests.contract.models import ContractUnitOfWork, Item

#: Nothing listens on port 1: connecting is refused at once.
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
async def down_router() -> ReplicaRouter:
    engine = create_engine(DatabaseSettings(url=UNREACHABLE, connect_timeout=2))
    return ReplicaRouter([engine], health_timeout=2, health_interval=60)


async def test_a_replica_that_refuses_connections_sends_reads_to_the_primary(
    down_router: ReplicaRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """The health check fails, the replica is marked down and logged, and the read falls back."""
    with caplog.at_level(logging.INFO, logger="keel.replicas"), read_after(None):
        assert await down_router.engine_for_read() is None
        assert await down_router.engine_for_read() is None  # cached: not checked again
    assert (down_router.stats.fallbacks, down_router.stats.marked_unhealthy) == (2, 1)
    assert "is down" in caplog.text
    await down_router.dispose()


async def test_an_unknown_commit_position_or_a_zero_timeout_reads_from_the_primary(
    down_router: ReplicaRouter,
) -> None:
    """After a commit whose position is unknown, or with no time to wait, reads skip the replicas."""
    with read_after(PRIMARY_ONLY):
        assert await down_router.engine_for_read() is None
    down_router.read_your_writes_timeout = 0
    with read_after("0/1"):
        assert await down_router.engine_for_read() is None
    assert down_router.stats.primary_reads == 2
    assert down_router.stats.marked_unhealthy == 0  # never even checked
    await down_router.dispose()


async def test_a_commit_on_a_backend_without_wal_positions_makes_later_reads_use_the_primary(
    engine: AsyncEngine, down_router: ReplicaRouter
) -> None:
    """On SQLite (no WAL position to ask) or after a commit, read-only units of work still find the data."""
    factory = create_session_factory(engine, replicas=down_router)
    with read_after(None):
        async with ContractUnitOfWork(factory) as uow:
            uow.items.add(Item(name="lamp"))
            await uow.commit()
        position = commit_position()
        assert position is not None
        if engine.dialect.name == "sqlite":
            assert position == PRIMARY_ONLY
        async with ContractUnitOfWork(factory, read_only=True) as uow:
            assert await uow.items.count() == 1
    await down_router.dispose()


def test_no_replicas_configured_builds_no_router() -> None:
    """create_replica_router returns None without KEEL_DATABASE__REPLICAS, a router over them otherwise."""
    assert create_replica_router(DatabaseSettings(url="postgresql://u@primary/db")) is None
    router = create_replica_router(
        DatabaseSettings(url="postgresql://u@primary/db", password="pw", replicas="postgresql://u@replica/db")
    )
    assert router is not None
    [engine] = router.engines
    assert (engine.url.host, engine.url.password) == ("replica", "pw")
