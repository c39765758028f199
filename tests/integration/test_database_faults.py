"""Client-side timeouts and readiness against a frozen server (a private cluster, SIGSTOPped) and slow statements."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import DatabaseUnavailableError
from keel.config import DatabaseSettings
from keel.infrastructure.database import check_database, create_engine, create_session_factory
from keel.orm import Base
from tests.conftest import reset_schema
from tests.models import AppUnitOfWork, Counter
from tests.support.postgres_cluster import PrivateCluster

COMMAND_TIMEOUT = 1.0
CONNECT_TIMEOUT = 1.0
#: Scheduling slack on a loaded 2-core machine; the failures must not take seconds more than the timeouts.
SLACK = 1.0


@pytest.fixture
async def frozen_engine(private_postgres: PrivateCluster) -> AsyncIterator[AsyncEngine]:
    """An engine on the private cluster with one-second client timeouts and a warm pool."""
    engine = create_engine(
        DatabaseSettings(
            url=private_postgres.url,
            command_timeout=COMMAND_TIMEOUT,
            connect_timeout=CONNECT_TIMEOUT,
            pool_timeout=1,
            pool_size=2,
            max_connections=4,
        )
    )
    await reset_schema(engine, Base.metadata)
    uow = AppUnitOfWork(create_session_factory(engine))
    async with uow:
        uow.counters.add(Counter(id=1, value=0))
        await uow.commit()
    yield engine
    private_postgres.thaw()
    await engine.dispose()


@pytest.mark.postgres
async def test_a_unit_of_work_on_a_frozen_server_fails_within_the_timeouts_with_a_keel_error(
    frozen_engine: AsyncEngine, private_postgres: PrivateCluster
) -> None:
    """SIGSTOPped postmaster and backends: DatabaseUnavailableError after command+connect timeout, not a hang."""
    uow = AppUnitOfWork(create_session_factory(frozen_engine))
    private_postgres.freeze()
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError):
        async with asyncio.timeout(30):  # the bug: without client timeouts this never returns
            async with uow:
                await uow.counters.get(1)
    assert time.monotonic() - started < COMMAND_TIMEOUT + CONNECT_TIMEOUT + SLACK


@pytest.mark.postgres
async def test_a_statement_on_a_connection_the_server_froze_under_fails_within_command_timeout(
    frozen_engine: AsyncEngine, private_postgres: PrivateCluster
) -> None:
    """A connection already checked out when the server freezes gives up after command_timeout, typed."""
    async with frozen_engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        private_postgres.freeze()
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="command_timeout"):
            async with asyncio.timeout(30):
                await conn.execute(text("SELECT 1"))
        assert time.monotonic() - started < COMMAND_TIMEOUT + SLACK


@pytest.mark.postgres
@pytest.mark.parametrize("pool", ["warm", "empty"])
async def test_readiness_on_a_frozen_server_is_not_ready_within_its_timeout(
    frozen_engine: AsyncEngine, private_postgres: PrivateCluster, pool: str
) -> None:
    """check_database(timeout=0.5) is not-ready in about 0.5 s, whether it pings a pooled connection or connects."""
    if pool == "empty":
        await frozen_engine.dispose()
    private_postgres.freeze()
    started = time.monotonic()
    result = await check_database(frozen_engine, timeout=0.5)
    elapsed = time.monotonic() - started
    assert not result.healthy
    assert result.detail == "no answer within 0.5s"
    assert 0.5 <= elapsed < 0.5 + 0.25


@pytest.mark.postgres
async def test_after_the_server_thaws_the_next_unit_of_work_succeeds(
    frozen_engine: AsyncEngine, private_postgres: PrivateCluster
) -> None:
    """The connections that timed out were dropped, not handed out again: work resumes once the server does."""
    uow = AppUnitOfWork(create_session_factory(frozen_engine))
    private_postgres.freeze()
    for _ in range(2):
        with pytest.raises(DatabaseUnavailableError):
            async with uow:
                await uow.counters.get(1)
    private_postgres.thaw()
    async with asyncio.timeout(10):
        async with uow:
            counter = await uow.counters.get(1)
            counter.value += 1
            await uow.commit()
    assert (await check_database(frozen_engine, timeout=5)).healthy


@pytest.mark.postgres
async def test_a_statement_slower_than_command_timeout_drops_only_its_own_connection(postgres_url: str) -> None:
    """pg_sleep past command_timeout is DatabaseUnavailableError; the pool's other connection stays in use."""
    name = f"keel-{uuid.uuid4().hex}"
    engine = create_engine(
        DatabaseSettings(url=postgres_url, command_timeout=0.3, application_name=name, pool_size=2, max_connections=2)
    )
    try:
        async with engine.connect() as other:
            pid_before = (await other.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError, match="command_timeout"):
                async with engine.connect() as slow:
                    await slow.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - started < 0.3 + SLACK
            pid_after = (await other.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert pid_after == pid_before
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite-memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def one_connection(request: pytest.FixtureRequest) -> DatabaseSettings:
    """Settings whose pool holds a single connection and would wait 30 s for it."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return DatabaseSettings(url=url, pool_size=1, max_connections=1, pool_timeout=30)
    return DatabaseSettings(url="sqlite+aiosqlite://", pool_timeout=30)


async def test_readiness_keeps_its_timeout_while_waiting_for_a_pooled_connection(
    one_connection: DatabaseSettings,
) -> None:
    """Every connection is taken and pool_timeout is 30 s: check_database(timeout=0.3) still answers in ~0.3 s."""
    engine = create_engine(one_connection)
    try:
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            started = time.monotonic()
            result = await check_database(engine, timeout=0.3)
            elapsed = time.monotonic() - started
        assert not result.healthy
        assert result.detail == "no answer within 0.3s"
        assert 0.3 <= elapsed < 0.3 + 0.25
        assert (await check_database(engine, timeout=5)).healthy, "the abandoned probe gave its place back"
    finally:
        await engine.dispose()
