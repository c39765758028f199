"""In-memory SQLite under a cancellation storm, and the readiness probe while its only connection is busy."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiosqlite
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import KeelError
from keel.config import DatabaseSettings
from keel.infrastructure.database import check_database, create_engine, create_session_factory
from keel.orm import Base
from tests.models import AppUnitOfWork, Counter

WORKERS = 30
ROUNDS = 8


@pytest.fixture
async def memory_engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite://", pool_timeout=5))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AppUnitOfWork(create_session_factory(engine)) as uow:
        uow.counters.add(Counter(id=1, value=0))
        await uow.commit()
    yield engine
    await engine.dispose()


async def until(condition: Callable[[], Awaitable[bool]], deadline: float = 10) -> bool:
    """Poll ``condition`` with a deadline, yielding to the loop between tries."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        if await condition():
            return True
        await asyncio.sleep(0)
    return False


async def _ready(engine: AsyncEngine) -> bool:
    return (await check_database(engine, timeout=1)).healthy


async def _returned(engine: AsyncEngine) -> bool:
    return engine.pool.checkedout() == 0  # type: ignore[attr-defined,no-any-return]


async def cancel_after(task: asyncio.Task[None], turns: int) -> None:
    for _ in range(turns):
        if task.done():
            return
        await asyncio.sleep(0)
    task.cancel()


async def test_a_cancellation_storm_loses_no_committed_work_and_leaks_no_connection(
    memory_engine: AsyncEngine,
) -> None:
    """30 writers, a random third cancelled at random moments each round: every commit that returned is counted."""
    factory = create_session_factory(memory_engine)
    returned = started = 0
    failures: list[BaseException] = []
    rng = random.Random(7)

    async def writer() -> None:
        nonlocal returned, started
        try:
            async with AppUnitOfWork(factory) as uow:
                (await uow.counters.get(1)).value += 1
                started += 1
                await uow.commit()
                returned += 1
        except KeelError as exc:  # a typed error is allowed (a conflict); anything else is not
            failures.append(exc)

    for _ in range(ROUNDS):
        tasks = [asyncio.create_task(writer()) for _ in range(WORKERS)]
        # Each victim is cancelled after its own number of scheduler turns, so
        # cancellations land in every phase: waiting for the connection, querying, committing, closing.
        killers = [
            asyncio.create_task(cancel_after(task, rng.randrange(0, 400))) for task in rng.sample(tasks, WORKERS // 3)
        ]
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)
        await asyncio.gather(*killers)
        unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        assert not unexpected, unexpected
    assert memory_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with AppUnitOfWork(factory) as uow:
        value = (await uow.counters.get(1)).value
    assert returned <= value <= started
    assert returned < ROUNDS * WORKERS, "some writers were cancelled mid-work"
    assert all(type(f).__name__ == "ConcurrencyError" for f in failures), failures


async def test_a_cancellation_during_the_pools_reset_after_a_commit_keeps_the_database(
    memory_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while the pool rolls the returned connection back: the only connection, and the data, stay.

    The pool used to invalidate a connection whose reset was interrupted, which
    for an in-memory database closes the database itself.
    """
    factory = create_session_factory(memory_engine)
    in_reset, release = asyncio.Event(), asyncio.Event()
    original = aiosqlite.Connection.rollback

    async def slow_rollback(self: aiosqlite.Connection) -> None:
        in_reset.set()
        await release.wait()
        await original(self)

    async def commit_once() -> None:
        async with AppUnitOfWork(factory) as uow:
            (await uow.counters.get(1)).value += 1
            monkeypatch.setattr(aiosqlite.Connection, "rollback", slow_rollback)
            await uow.commit()

    task = asyncio.create_task(commit_once())
    await asyncio.wait_for(in_reset.wait(), timeout=10)
    monkeypatch.setattr(aiosqlite.Connection, "rollback", original)
    task.cancel()
    release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled(), "the cancellation still reaches the task"
    assert await until(lambda: _returned(memory_engine))
    async with AppUnitOfWork(factory) as uow:
        assert (await uow.counters.get(1)).value == 1, "the committed work and the table are still there"


async def test_readiness_keeps_its_timeout_while_a_unit_of_work_holds_the_only_connection(
    memory_engine: AsyncEngine,
) -> None:
    """The probe waits for the busy connection no longer than its timeout, then reports not ready; later, ready."""
    factory = create_session_factory(memory_engine)
    async with AppUnitOfWork(factory) as uow:
        await uow.counters.get(1)
        began = time.monotonic()
        result = await check_database(memory_engine, timeout=0.3)
        elapsed = time.monotonic() - began
    assert not result.healthy
    assert elapsed < 0.3 + 0.5  # scheduling slack on a loaded machine
    # The abandoned probe finishes in the background; poll with a deadline.
    assert await until(lambda: _ready(memory_engine))
    assert memory_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


FIRST_PROBE = """
import asyncio, sys
from keel.config import DatabaseSettings
from keel.infrastructure.database import check_database, create_engine

async def main():
    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite://"))
    result = await check_database(engine, timeout=5)
    await engine.dispose()
    assert result.healthy, result
    print(sorted(name for name in ("alembic", "keel.infrastructure.database.migrations") if name in sys.modules))

asyncio.run(main())
"""


def test_the_first_probe_of_a_process_does_not_import_alembic_on_the_event_loop() -> None:
    """A probe without migration heads never imports Alembic (hundreds of ms that stalled the loop and the timeout)."""
    done = subprocess.run([sys.executable, "-c", FIRST_PROBE], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("timeout", [0, -1, 1e-9])
async def test_readiness_with_a_degenerate_timeout_answers_at_once(memory_engine: AsyncEngine, timeout: float) -> None:
    """timeout 0, negative or tiny: an answer (not ready, or ready if it was that fast), never a hang or raise."""
    began = time.monotonic()
    result = await check_database(memory_engine, timeout=timeout)
    assert time.monotonic() - began < 0.25
    assert result.component == "database"
    assert await until(lambda: _returned(memory_engine))
