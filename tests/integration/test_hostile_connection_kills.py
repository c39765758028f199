"""Connections the server kills at every phase of a unit of work: typed errors, nothing leaked, work resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import literal_column, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import NullPool

from keel import AggregateRoot, DatabaseUnavailableError, KeelError, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import Base, VersionMixin
from tests.models import AppUnitOfWork, Counter

POSTGRES_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]
pytestmark = pytest.mark.parametrize("backend", POSTGRES_ONLY)


class Boom(Exception):
    """The handler's own failure."""


async def backend_pid(uow: SqlAlchemyUnitOfWork) -> int:
    return int((await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def kill(engine: AsyncEngine, pid: int) -> None:
    # Never through ``engine``'s pool: it may hand out the very connection to kill.
    admin_engine = create_async_engine(engine.url, poolclass=NullPool)
    try:
        async with admin_engine.connect() as admin:
            killed = await admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            assert killed.scalar_one() is True
    finally:
        await admin_engine.dispose()


async def idle_in_transaction(engine: AsyncEngine) -> int:
    async with engine.connect() as admin:
        found = await admin.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            )
        )
        return int(found.scalar_one())


async def assert_recovered(engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]) -> None:
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await idle_in_transaction(engine) == 0
    async with AppUnitOfWork(session_factory) as uow:
        counter = await uow.counters.get_or_none(1)
        if counter is None:
            uow.counters.add(Counter(id=1, value=0))
        else:
            counter.value += 1
        await uow.commit()


async def seed(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with AppUnitOfWork(session_factory) as uow:
        uow.counters.add(Counter(id=1, value=0))
        await uow.commit()


async def test_a_pooled_connection_killed_while_idle_is_replaced_before_the_first_query(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Killed in the pool, before the unit of work's first query: pre-ping replaces it, the work succeeds."""
    await seed(session_factory)
    async with AppUnitOfWork(session_factory) as uow:
        pid = await backend_pid(uow)
    await kill(engine, pid)
    async with AppUnitOfWork(session_factory) as uow:
        (await uow.counters.get(1)).value += 1
        await uow.commit()
    await assert_recovered(engine, session_factory)


async def test_a_connection_killed_mid_query_is_database_unavailable(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A statement running when its backend is terminated fails with DatabaseUnavailableError, nothing leaks."""
    await seed(session_factory)
    with pytest.raises(DatabaseUnavailableError):
        async with AppUnitOfWork(session_factory) as uow:
            pid = await backend_pid(uow)
            running = asyncio.ensure_future(
                uow.counters.list(Counter.value < literal_column("(SELECT 1 FROM pg_sleep(30))"))
            )
            async with asyncio.timeout(10):
                while not running.done():
                    async with engine.connect() as admin:
                        state = await admin.execute(
                            text("SELECT wait_event FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                        )
                        if state.scalar_one_or_none() == "PgSleep":
                            break
            await kill(engine, pid)
            await running
    await assert_recovered(engine, session_factory)


Phase = Callable[[AppUnitOfWork], Awaitable[None]]


async def _flush_by_query(uow: AppUnitOfWork) -> None:
    (await uow.counters.get(1)).value += 1
    await kill(uow_engine(uow), await backend_pid_cached(uow))
    await uow.counters.list()  # autoflush


async def _flush_by_commit(uow: AppUnitOfWork) -> None:
    (await uow.counters.get(1)).value += 1
    await kill(uow_engine(uow), await backend_pid_cached(uow))
    await uow.commit()


async def _commit_without_changes(uow: AppUnitOfWork) -> None:
    await uow.counters.get(1)
    await kill(uow_engine(uow), await backend_pid_cached(uow))
    await uow.commit()


async def _explicit_rollback(uow: AppUnitOfWork) -> None:
    (await uow.counters.get(1)).value += 1
    await kill(uow_engine(uow), await backend_pid_cached(uow))
    await uow.rollback()


def uow_engine(uow: AppUnitOfWork) -> AsyncEngine:
    bind = uow.session.bind
    assert isinstance(bind, AsyncEngine)
    return bind


async def backend_pid_cached(uow: AppUnitOfWork) -> int:
    pid = uow.session.info.get("test.pid")
    if pid is None:
        pid = uow.session.info["test.pid"] = await backend_pid(uow)
    return int(pid)


PHASES = {
    "autoflush": _flush_by_query,
    "flush-in-commit": _flush_by_commit,
    "commit": _commit_without_changes,
    "rollback": _explicit_rollback,
}


@pytest.mark.parametrize("phase", list(PHASES))
async def test_a_connection_killed_at_each_phase_is_database_unavailable_and_the_next_unit_of_work_works(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], phase: str
) -> None:
    """Autoflush, flush, COMMIT, explicit rollback on a killed connection: DatabaseUnavailableError, pool clean."""
    await seed(session_factory)
    with pytest.raises(DatabaseUnavailableError) as raised:
        async with AppUnitOfWork(session_factory) as uow:
            await backend_pid_cached(uow)
            await PHASES[phase](uow)
    assert raised.value.__cause__ is not None
    await assert_recovered(engine, session_factory)


@pytest.mark.parametrize("phase", list(PHASES))
async def test_a_body_error_after_a_kill_at_each_phase_is_never_masked(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], phase: str
) -> None:
    """The keel error a phase raised is the one the caller sees, whatever the exit's cleanup does."""
    await seed(session_factory)
    with pytest.raises(Boom):
        async with AppUnitOfWork(session_factory) as uow:
            await backend_pid_cached(uow)
            try:
                await PHASES[phase](uow)
            except KeelError as exc:
                raise Boom(exc.code) from exc
    await assert_recovered(engine, session_factory)


async def test_after_a_rollback_on_a_killed_connection_the_same_unit_of_work_starts_again(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """uow.rollback() on a dead connection raises DatabaseUnavailableError, then the block goes on on a fresh one."""
    await seed(session_factory)
    async with AppUnitOfWork(session_factory) as uow:
        with pytest.raises(DatabaseUnavailableError):
            await _explicit_rollback(uow)
        (await uow.counters.get(1)).value += 5
        await uow.commit()
    async with AppUnitOfWork(session_factory) as uow:
        assert (await uow.counters.get(1)).value == 5
    await assert_recovered(engine, session_factory)


class Dial(Base, AggregateRoot, VersionMixin):
    """A table of this module's own: a deferred trigger on it makes COMMIT slow on request."""

    __tablename__ = "hostile_dials"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class DialUnitOfWork(SqlAlchemyUnitOfWork):
    dials: SqlAlchemyRepository[Dial]


#: COMMIT sleeps when a dial is set to this value: a deferred constraint trigger runs at COMMIT.
SLOW_COMMIT = 4242
SLOW_COMMIT_DDL = [
    f"""CREATE OR REPLACE FUNCTION hostile_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.value = {SLOW_COMMIT} THEN PERFORM pg_sleep(30); END IF; RETURN NULL; END $$""",
    "DROP TRIGGER IF EXISTS hostile_slow_commit ON hostile_dials",
    """CREATE CONSTRAINT TRIGGER hostile_slow_commit AFTER INSERT OR UPDATE ON hostile_dials
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hostile_slow_commit()""",
]


async def wait_for_backend(engine: AsyncEngine, pid: int, *, wait_event_type: str) -> None:
    """Poll pg_stat_activity (deadline 10 s) until ``pid`` waits on ``wait_event_type``."""
    admin_engine = create_async_engine(engine.url, poolclass=NullPool)
    try:
        async with asyncio.timeout(10), admin_engine.connect() as admin:
            while True:
                found = await admin.execute(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
                if found.scalar_one_or_none() == wait_event_type:
                    return
    finally:
        await admin_engine.dispose()


async def test_a_connection_killed_while_its_flush_waits_for_a_row_lock_is_database_unavailable(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The flush's UPDATE is in flight (blocked by another writer's lock) when its backend dies: typed, clean."""
    async with DialUnitOfWork(session_factory) as uow:
        uow.dials.add(Dial(id=1))
        await uow.commit()
    async with engine.connect() as holder:
        await holder.execute(text("SELECT * FROM hostile_dials WHERE id = 1 FOR UPDATE"))
        with pytest.raises(DatabaseUnavailableError):
            async with DialUnitOfWork(session_factory) as uow:
                pid = await backend_pid(uow)
                (await uow.dials.get(1)).value = 7
                committing = asyncio.ensure_future(uow.commit())
                await wait_for_backend(engine, pid, wait_event_type="Lock")
                await kill(engine, pid)
                await committing
        await holder.rollback()
    await assert_recovered(engine, session_factory)
    async with DialUnitOfWork(session_factory) as uow:
        assert (await uow.dials.get(1)).value == 0


async def test_a_connection_killed_during_commit_is_database_unavailable_and_nothing_is_half_done(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """COMMIT is running (a deferred trigger sleeps in it) when the backend dies: typed, the change is not stored."""
    async with engine.begin() as conn:
        for statement in SLOW_COMMIT_DDL:
            await conn.execute(text(statement))
    async with DialUnitOfWork(session_factory) as uow:
        uow.dials.add(Dial(id=1))
        await uow.commit()
    with pytest.raises(DatabaseUnavailableError):
        async with DialUnitOfWork(session_factory) as uow:
            pid = await backend_pid(uow)
            (await uow.dials.get(1)).value = SLOW_COMMIT
            committing = asyncio.ensure_future(uow.commit())
            await wait_for_backend(engine, pid, wait_event_type="Timeout")  # pg_sleep inside COMMIT
            await kill(engine, pid)
            await committing
    await assert_recovered(engine, session_factory)
    async with DialUnitOfWork(session_factory) as uow:
        dial = await uow.dials.get(1)
        assert (dial.value, dial.version) == (0, 1)
