"""Fixtures for the fault tests: an engine on a private PostgreSQL cluster the test may restart or kill."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine
from keel.orm import Base, keel_metadata
from tests.conftest import reset_schema
from tests.support.postgres_cluster import PrivateCluster


@pytest.fixture
def backend() -> str:
    """Faults are PostgreSQL's: the shared fixtures (``engine``, ``session_factory``) run on it only."""
    return "postgresql"


@pytest.fixture
async def cluster_engine(private_postgres: PrivateCluster) -> AsyncIterator[AsyncEngine]:
    """An engine on the private cluster with short client timeouts, keel's and the tests' tables empty."""
    engine = create_engine(
        DatabaseSettings(
            url=private_postgres.url,
            command_timeout=5,
            connect_timeout=2,
            pool_timeout=5,
            pool_size=4,
            max_connections=8,
        )
    )
    await reset_schema(engine, Base.metadata)
    await reset_schema(engine, keel_metadata)
    yield engine
    await engine.dispose()


async def admin_scalar(url: str, sql: str) -> Any:
    """One statement on a connection of its own, never one from the pool under test."""
    admin = create_async_engine(url, poolclass=NullPool)
    try:
        async with admin.begin() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await admin.dispose()


async def idle_in_transaction(url: str) -> int:
    """Connections other than this one left idle inside a transaction."""
    found = await admin_scalar(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    return int(found)
