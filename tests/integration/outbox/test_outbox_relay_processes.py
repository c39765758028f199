"""The relay as a process: killed mid-batch it loses nothing; SIGTERM finishes the batch in hand."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.outbox import outbox_status
from tests.integration.outbox.conftest import allocate, outbox_rows, seed
from tests.integration.outbox.test_outbox_relay import nothing_pending
from tests.models import AppUnitOfWork
from tests.support.polling import eventually

ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def relay_process(url: str, out: Path, delay: float, batch: int) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.relay_process", url, str(out), str(delay), str(batch)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def lines(out: Path) -> list[str]:
    return out.read_text().split() if out.exists() else []


async def published_ids(session_factory: async_sessionmaker[AsyncSession]) -> set[str]:
    return {str(row["id"]) for row in await outbox_rows(session_factory) if row["status"] == "published"}


async def fill(uow_factory: Callable[[], AppUnitOfWork], events: int, keys: int = 10) -> None:
    skus = [f"P{n}" for n in range(keys)]
    await seed(uow_factory, *skus)
    await asyncio.gather(*(allocate(uow_factory, sku, times=events // keys) for sku in skus))


@pytest.mark.slow
async def test_a_relay_killed_mid_batch_loses_nothing(
    database_url: str,
    uow_factory: Callable[[], AppUnitOfWork],
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """SIGKILL twice in the middle of batches; after restarts every row is published and marked."""
    await fill(uow_factory, 1500)
    out = tmp_path / "published.txt"
    for kill in range(2):
        with relay_process(database_url, out, delay=0.001, batch=100) as process:
            target = len(lines(out)) + 250
            await eventually(lambda: len(lines(out)) >= target)  # noqa: B023 -- awaited within the iteration
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        # Published to the bus but not marked: the killed batch is rolled back, to be sent again.
        assert len(set(lines(out))) > len(await published_ids(session_factory)), f"kill {kill} missed a batch"
    with relay_process(database_url, out, delay=0.0, batch=100) as process:
        await eventually(lambda: nothing_pending(session_factory), timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    every = {str(row["id"]) for row in await outbox_rows(session_factory)}
    assert len(every) == 1500
    assert await published_ids(session_factory) == every
    assert set(lines(out)) == every


@pytest.mark.slow
async def test_sigterm_finishes_the_batch_in_hand_and_exits(
    database_url: str,
    uow_factory: Callable[[], AppUnitOfWork],
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """Stopped mid-batch, the relay publishes the rest of that batch, marks it, and exits 0."""
    await fill(uow_factory, 200)
    out = tmp_path / "published.txt"
    with relay_process(database_url, out, delay=0.01, batch=20) as process:
        await eventually(lambda: len(lines(out)) >= 3)
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    sent = lines(out)
    assert len(sent) == len(set(sent))
    # Everything it sent is marked: a relay that left mid-batch would have sent rows it never marked.
    assert set(sent) == await published_ids(session_factory)
    assert (await outbox_status(session_factory)).pending == 200 - len(sent) > 0
