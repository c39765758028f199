"""Two projection worker processes on one projection: one SIGKILLed mid-run, the other takes over (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.event_store import NO_STREAM, ProjectionRunner, SqlAlchemyEventStore
from keel.infrastructure.event_store.tables import projection_checkpoints
from tests.contract.event_store_models import Deposited, Opened
from tests.contract.projection_models import LedgerProjection, rows_of
from tests.support.polling import eventually

Factory = async_sessionmaker[AsyncSession]
pytestmark = [
    pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
]


async def _append(session_factory: Factory, first: int, streams: int, per_stream: int = 10) -> None:
    store = SqlAlchemyEventStore(session_factory)
    await store.append_many(
        (f"acc-{s}", [Opened(owner=f"o{s}"), *(Deposited(amount=s + d) for d in range(per_stream - 1))], NO_STREAM)
        for s in range(first, first + streams)
    )


async def _checkpoint(session_factory: Factory) -> int:
    async with session_factory() as session:
        query = select(projection_checkpoints.c.position).where(projection_checkpoints.c.name == "ledger")
        return int((await session.execute(query)).scalar() or 0)


@pytest.fixture
def workers(database_url: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Starts ``keel events run`` processes on demand; kills what is left at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _start(database_url: str, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KEEL_DATABASE__URL": database_url,
        "KEEL_EVENT_STORE__PROJECTIONS": "tests.support.projection_workers:PROJECTIONS",
        "KEEL_EVENT_STORE__PROJECTION_BATCH_SIZE": "50",
        "KEEL_EVENT_STORE__PROJECTION_POLL_INTERVAL": "1",
        "KEEL_EVENT_STORE__PROJECTION_CLAIM_INTERVAL": "0.2",
    }
    process = subprocess.Popen([sys.executable, "-m", "keel", "events", "run"], env=env)
    started.append(process)
    return process


@pytest.mark.slow
async def test_a_killed_worker_is_taken_over_and_the_projection_equals_a_clean_replay(
    session_factory: Factory, database_url: str, workers: list[subprocess.Popen[bytes]]
) -> None:
    """SIGKILL the owning worker mid-run: the other takes over within seconds; the result equals a clean replay."""
    await _append(session_factory, 0, 200)
    store = SqlAlchemyEventStore(session_factory)
    owner = _start(database_url, workers)

    async def started() -> bool:
        return await _checkpoint(session_factory) > 0

    await eventually(started, timeout=30)
    standby = _start(database_url, workers)

    async def far_enough() -> bool:
        return await _checkpoint(session_factory) >= 600

    await eventually(far_enough, timeout=60)
    assert standby.poll() is None
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    killed_at = await _checkpoint(session_factory)
    assert killed_at < 2000, "the owner finished before it was killed: slow it down"
    stopped = time.monotonic()

    async def taken_over() -> bool:
        return await _checkpoint(session_factory) > killed_at

    await eventually(taken_over, timeout=15)
    takeover = time.monotonic() - stopped
    assert takeover < 10, f"takeover took {takeover:.1f} s"
    await _append(session_factory, 200, 30)  # followed through NOTIFY by the survivor
    head = (await store.read_all())[-1].position

    async def caught_up() -> bool:
        return await _checkpoint(session_factory) == head

    await eventually(caught_up, timeout=60)
    standby.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(standby.wait, 10) == 0

    await ProjectionRunner(session_factory, [LedgerProjection(name="clean")], batch_size=500).catch_up("clean")
    async with session_factory() as session:
        followed, clean = await rows_of(session, "ledger"), await rows_of(session, "clean")
    assert len(clean) == 2300
    assert followed == clean
