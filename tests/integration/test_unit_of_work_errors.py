"""Leaving a unit of work whose connection died: typed errors, and the body's own error never hidden."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel import DatabaseUnavailableError
from tests.models import AppUnitOfWork, Counter
from tests.support.seeding import seed

POSTGRES_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]


class Boom(Exception):
    """The handler's own failure."""


async def kill_backend_of(uow: AppUnitOfWork, engine: AsyncEngine) -> None:
    """Terminate the server process behind ``uow``'s connection, from another connection."""
    pid = (await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    async with engine.connect() as admin:
        # The timeout makes the call wait until the backend is gone.
        killed = await admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        assert killed.scalar_one() is True


async def assert_pool_recovers(engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]) -> None:
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await seed(AppUnitOfWork(session_factory), counters=[Counter(id=1)])
    async with AppUnitOfWork(session_factory) as uow:
        assert (await uow.counters.get(1)).value == 0


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
async def test_leaving_after_the_server_killed_the_connection_is_database_unavailable(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A body that finished normally gets DatabaseUnavailableError from the exit, and the pool stays usable."""
    with pytest.raises(DatabaseUnavailableError) as raised:
        async with AppUnitOfWork(session_factory) as uow:
            await uow.counters.get_or_none(1)
            await kill_backend_of(uow, engine)
    assert raised.value.__cause__ is not None
    await assert_pool_recovers(engine, session_factory)


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
async def test_a_connection_killed_after_the_commit_does_not_fail_the_committed_work(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """Once the block committed, a failed cleanup is logged, not raised: the caller must not retry durable work."""
    async with AppUnitOfWork(session_factory) as uow:
        uow.counters.add(Counter(id=7, value=3))
        await uow.commit()
        await kill_backend_of(uow, engine)
    assert any("after a commit" in record.getMessage() for record in caplog.records)
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with AppUnitOfWork(session_factory) as uow:
        assert (await uow.counters.get(7)).value == 3


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
async def test_a_body_error_survives_a_failed_exit_after_the_connection_was_killed(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """The handler's own exception propagates unchanged; the cleanup failure is logged and noted on it."""
    with pytest.raises(Boom) as raised:
        async with AppUnitOfWork(session_factory) as uow:
            await uow.counters.get_or_none(1)
            await kill_backend_of(uow, engine)
            raise Boom("the handler failed")
    assert str(raised.value) == "the handler failed"
    notes = getattr(raised.value, "__notes__", [])
    assert any("cleanup after this error failed" in note and "database_unavailable" in note for note in notes), notes
    assert any("cleanup failed" in record.getMessage() for record in caplog.records)
    await assert_pool_recovers(engine, session_factory)


async def test_a_socket_error_while_closing_is_a_keel_error_and_never_hides_the_body_error(
    session_factory: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close failing under the driver (a reset socket) is DatabaseUnavailableError, or a note on the body's error."""

    async def reset_socket() -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(DatabaseUnavailableError):
        async with AppUnitOfWork(session_factory) as uow:
            await uow.counters.get_or_none(1)
            monkeypatch.setattr(uow.session, "close", reset_socket)
    with pytest.raises(Boom) as raised:
        async with AppUnitOfWork(session_factory) as uow:
            await uow.counters.get_or_none(1)
            monkeypatch.setattr(uow.session, "close", reset_socket)
            raise Boom("the handler failed")
    assert any("database_unavailable" in note for note in getattr(raised.value, "__notes__", []))
    async with AppUnitOfWork(session_factory) as uow:
        assert await uow.counters.get_or_none(1) is None
