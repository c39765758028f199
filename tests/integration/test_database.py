"""Engines from settings: per-backend connection setup, readiness checks, recovery from killed connections."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import DatabaseUnavailableError
from keel.config import DatabaseSettings
from keel.infrastructure.database import check_database, create_engine, create_session_factory
from keel.orm import Base
from tests.conftest import reset_schema
from tests.models import AppUnitOfWork, Counter
from tests.support.seeding import seed


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pg_settings(postgres_url: str) -> DatabaseSettings:
    """Settings with an application_name no other engine uses, so its backends can be singled out."""
    return DatabaseSettings(
        url=postgres_url, pool_size=2, max_connections=4, application_name=f"keel-{uuid.uuid4().hex}"
    )


@pytest.fixture
async def pg_engine(pg_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_settings)
    await reset_schema(engine, Base.metadata)
    yield engine
    await engine.dispose()


async def terminate_backends(postgres_url: str, application_name: str) -> int:
    """Kill every server process serving ``application_name``, as a failover or an operator would."""
    admin = create_engine(DatabaseSettings(url=postgres_url, application_name="keel-admin"))
    try:
        async with admin.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": application_name},
            )
            return int(result.scalar_one())
    finally:
        await admin.dispose()


async def increment(uow: AppUnitOfWork) -> int:
    async with uow:
        counter = await uow.counters.get(1)
        counter.value += 1
        await uow.commit()
        return counter.value


@pytest.mark.postgres
async def test_the_next_unit_of_work_succeeds_after_the_server_kills_every_connection(
    pg_engine: AsyncEngine, pg_settings: DatabaseSettings, postgres_url: str
) -> None:
    """Pre-ping replaces pooled connections the server terminated: no error, no restart."""
    uow = AppUnitOfWork(create_session_factory(pg_engine))
    async with uow:
        uow.counters.add(Counter(id=1, value=0))
        await uow.commit()
    assert await terminate_backends(postgres_url, pg_settings.application_name) >= 1
    assert await increment(uow) == 1
    assert await increment(uow) == 2


@pytest.mark.postgres
async def test_without_pre_ping_a_killed_connection_is_a_keel_error_and_the_pool_recovers(
    pg_settings: DatabaseSettings, postgres_url: str
) -> None:
    """Without pre-ping the first use of a dead connection fails as DatabaseUnavailableError; the next works."""
    engine = create_engine(pg_settings.model_copy(update={"pool_pre_ping": False}))
    try:
        await reset_schema(engine, Base.metadata)
        uow = AppUnitOfWork(create_session_factory(engine))
        async with uow:
            uow.counters.add(Counter(id=1, value=0))
            await uow.commit()
        assert await terminate_backends(postgres_url, pg_settings.application_name) >= 1
        with pytest.raises(DatabaseUnavailableError):
            await increment(uow)
        assert await increment(uow) == 1
    finally:
        await engine.dispose()


async def test_readiness_check_reports_a_healthy_database(engine: AsyncEngine, backend: str) -> None:
    """check_database answers healthy with the backend's name and a latency."""
    result = await check_database(engine, timeout=5)
    assert result.healthy
    assert result.component == "database"
    assert result.latency_ms >= 0
    assert result.to_dict() == {
        "component": "database",
        "healthy": True,
        "latency_ms": result.latency_ms,
        "detail": "",
        "extra": {"backend": backend},
    }


async def test_readiness_check_reports_a_refused_connection_without_raising() -> None:
    """A server that refuses connections is reported unhealthy with a keel code, not raised."""
    engine = create_engine(DatabaseSettings(url=f"postgresql+asyncpg://app:s3cret@127.0.0.1:{closed_port()}/app"))
    try:
        result = await check_database(engine, timeout=5)
    finally:
        await engine.dispose()
    assert not result.healthy
    assert result.extra == {"backend": "postgresql", "code": "database_unavailable"}
    assert "cannot connect" in result.detail
    assert "s3cret" not in repr(result.to_dict())


async def test_readiness_check_gives_up_after_its_timeout() -> None:
    """A server that accepts but never answers is reported unhealthy once the timeout passes."""

    accepted: list[asyncio.StreamWriter] = []
    hung_up = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # never answer; returns once the client hangs up
        hung_up.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_engine(DatabaseSettings(url=f"postgresql+asyncpg://app@127.0.0.1:{port}/app"))
    try:
        started = time.perf_counter()
        result = await check_database(engine, timeout=0.3)
        elapsed = time.perf_counter() - started
        async with asyncio.timeout(5):
            await hung_up.wait()  # the probe closed its socket when it gave up
    finally:
        await engine.dispose()
        server.close()
        for writer in accepted:
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()
    assert not result.healthy
    assert result.detail == "no answer within 0.3s"
    assert 0.3 <= elapsed < 5


async def test_an_unreachable_database_fails_a_unit_of_work_with_a_keel_error() -> None:
    """A refused connection inside a unit of work is DatabaseUnavailableError, not an OSError traceback."""
    engine = create_engine(DatabaseSettings(url=f"postgresql+asyncpg://app@127.0.0.1:{closed_port()}/app"))
    try:
        uow = AppUnitOfWork(create_session_factory(engine))
        with pytest.raises(DatabaseUnavailableError, match="could not be reached") as caught:
            async with uow:
                await uow.counters.get(1)
        assert isinstance(caught.value.__cause__, OSError)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_connections_carry_application_name_and_statement_timeout(postgres_url: str) -> None:
    """application_name and statement_timeout from settings are set on every PostgreSQL connection."""
    engine = create_engine(DatabaseSettings(url=postgres_url, application_name="keel-probe", statement_timeout=1.5))
    try:
        async with engine.connect() as conn:
            name = (await conn.execute(text("SELECT current_setting('application_name')"))).scalar_one()
            timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
    finally:
        await engine.dispose()
    assert name == "keel-probe"
    assert timeout == "1500ms"


@pytest.mark.postgres
async def test_default_statement_timeout_is_thirty_seconds_and_zero_disables_it(postgres_url: str) -> None:
    """The default limit is 30s; statement_timeout=0 leaves the server's default (no limit)."""
    shown = []
    for settings in (DatabaseSettings(url=postgres_url), DatabaseSettings(url=postgres_url, statement_timeout=0)):
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:
                shown.append((await conn.execute(text("SHOW statement_timeout"))).scalar_one())
        finally:
            await engine.dispose()
    assert shown == ["30s", "0"]


async def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    """Every SQLite connection has foreign keys on, WAL journaling and the busy timeout from settings."""
    engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'pragmas.db'}", sqlite_busy_timeout=2.5))
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("foreign_keys", "journal_mode", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 2500}


async def test_an_in_memory_sqlite_database_is_shared_by_every_session() -> None:
    """sqlite:///:memory: uses one connection, so tables created once are seen by every unit of work."""
    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite:///:memory:"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        uow = AppUnitOfWork(create_session_factory(engine))
        async with uow:
            uow.counters.add(Counter(id=1, value=0))
            await uow.commit()
        assert await increment(uow) == 1
    finally:
        await engine.dispose()


async def test_concurrent_units_of_work_on_in_memory_sqlite_never_commit_each_others_work() -> None:
    """Tasks take turns with the one connection: a rolled-back unit of work's rows never appear."""
    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite:///:memory:"))
    factory = create_session_factory(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

        async def work(i: int) -> None:
            async with AppUnitOfWork(factory) as uow:
                uow.counters.add(Counter(id=i, value=i))
                await uow.session.flush()
                for _ in range(3):
                    await asyncio.sleep(0)  # let the other tasks run between flush and commit
                if i % 2:
                    raise RuntimeError("rolled back")
                await uow.commit()

        results = await asyncio.gather(*(work(i) for i in range(1, 11)), return_exceptions=True)
        assert sum(isinstance(r, RuntimeError) for r in results) == 5
        async with AppUnitOfWork(factory) as uow:
            assert sorted(c.id for c in await uow.counters.list()) == [2, 4, 6, 8, 10]
    finally:
        await engine.dispose()


async def test_a_second_unit_of_work_on_in_memory_sqlite_waits_for_the_connection() -> None:
    """While one unit of work holds the connection another waits (here past pool_timeout), never joining it."""
    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite:///:memory:", pool_timeout=0.2))
    factory = create_session_factory(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        flushed, other_done = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            with pytest.raises(RuntimeError):
                async with AppUnitOfWork(factory) as uow:
                    uow.counters.add(Counter(id=1, value=1))
                    await uow.session.flush()
                    flushed.set()
                    await other_done.wait()
                    raise RuntimeError("rolled back")

        async def other() -> None:
            await flushed.wait()
            try:
                with pytest.raises(DatabaseUnavailableError, match="no database connection became free"):
                    await seed(AppUnitOfWork(factory), counters=[Counter(id=2, value=2)])
            finally:
                other_done.set()

        await asyncio.gather(holder(), other())
        async with AppUnitOfWork(factory) as uow:
            assert await uow.counters.count() == 0
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_pool_opens_up_to_max_connections_then_waits_pool_timeout(postgres_url: str) -> None:
    """max_connections connections can be open at once; one more waits pool_timeout and fails as a keel error."""
    engine = create_engine(DatabaseSettings(url=postgres_url, pool_size=1, max_connections=2, pool_timeout=0.2))
    await reset_schema(engine, Base.metadata)
    uow = AppUnitOfWork(create_session_factory(engine))
    try:
        assert engine.pool.size() == 1  # type: ignore[attr-defined]
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            with pytest.raises(DatabaseUnavailableError, match="free in time"):
                async with uow:
                    await uow.counters.get_or_none(1)
        async with uow:
            assert await uow.counters.get_or_none(1) is None
    finally:
        await engine.dispose()


async def test_a_unit_of_work_inside_another_on_in_memory_sqlite_fails_at_once() -> None:
    """The task holding the only in-memory connection gets UnitOfWorkError, not a pool timeout."""
    import time

    from keel import UnitOfWorkError
    from keel.config import DatabaseSettings
    from keel.infrastructure.database import create_engine, create_session_factory
    from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork

    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite:///:memory:", pool_timeout=30))
    factory = create_session_factory(engine)
    started = time.monotonic()
    try:
        async with SqlAlchemyUnitOfWork(factory) as outer:
            await outer.session.execute(text("SELECT 1"))
            with pytest.raises(UnitOfWorkError, match="already holds"):
                async with SqlAlchemyUnitOfWork(factory) as inner:
                    await inner.session.execute(text("SELECT 1"))
        async with SqlAlchemyUnitOfWork(factory) as again:  # returned: the next one gets it
            assert (await again.session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 10
