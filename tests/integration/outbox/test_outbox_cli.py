"""`keel outbox relay|status|retry|purge` on a SQLite database named by KEEL_DATABASE__URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.cli import cli
from keel.config import DatabaseSettings, KeelSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, keel_metadata
from keel.outbox import OutboxWriter, outbox
from tests.integration.outbox.conftest import ROUTES, allocate, outbox_rows, seed
from tests.models import AppUnitOfWork

Steps = Callable[[Callable[[], AppUnitOfWork], async_sessionmaker[AsyncSession]], Awaitable[object]]

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def keel_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE__URL", database_url)


def on_database(url: str, steps: Steps) -> object:
    """Run ``steps`` on the test's database (in a loop of its own, as the CLI runs in its own)."""

    async def run() -> object:
        engine = create_engine(DatabaseSettings(url=url))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
                await conn.run_sync(keel_metadata.create_all)
            factory = create_session_factory(engine)
            writer = OutboxWriter(ROUTES)
            return await steps(lambda: AppUnitOfWork(factory, participants=[writer]), factory)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def two_allocations(uow_factory: Callable[[], AppUnitOfWork], factory: async_sessionmaker[AsyncSession]) -> None:
    await seed(uow_factory, "LAMP")
    await allocate(uow_factory, "LAMP", times=2)


async def one_parked(uow_factory: Callable[[], AppUnitOfWork], factory: async_sessionmaker[AsyncSession]) -> None:
    await seed(uow_factory, "LAMP")
    await allocate(uow_factory, "LAMP")
    async with factory() as session, session.begin():
        await session.execute(update(outbox).values(status="parked", attempts=10, last_error="PublishError: no topic"))


async def rows(uow_factory: Callable[[], AppUnitOfWork], factory: async_sessionmaker[AsyncSession]) -> object:
    return await outbox_rows(factory)


def test_relay_once_publishes_and_status_counts(database_url: str) -> None:
    """`relay --once` publishes the due rows; `status --json` then shows none pending."""
    on_database(database_url, two_allocations)
    runner = CliRunner()
    before = runner.invoke(cli, ["outbox", "status"])
    assert before.exit_code == 0, before.output
    assert "pending: 2" in before.output
    result = runner.invoke(cli, ["outbox", "relay", "--once"])
    assert result.exit_code == 0, result.output
    assert "published 2" in result.output
    status = json.loads(runner.invoke(cli, ["outbox", "status", "--json"]).output)
    assert (status["pending"], status["published"], status["parked"]) == (0, 2, 0)


def test_status_lists_parked_messages_and_retry_requeues_them(database_url: str) -> None:
    """Parked messages show with their last error; `retry --all` puts them back as pending."""
    on_database(database_url, one_parked)
    runner = CliRunner()
    shown = runner.invoke(cli, ["outbox", "status"])
    assert "parked: 1" in shown.output
    assert "PublishError: no topic" in shown.output
    assert runner.invoke(cli, ["outbox", "retry"]).exit_code == 2  # says what to retry
    retried = runner.invoke(cli, ["outbox", "retry", "--all"])
    assert "re-queued 1" in retried.output
    [row] = cast("list[Any]", on_database(database_url, rows))
    assert (row["status"], row["attempts"]) == ("pending", 0)
    purged = runner.invoke(cli, ["outbox", "purge"])
    assert "deleted 0 published outbox row(s)" in purged.output


async def test_the_relay_builds_the_configured_event_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    """memory: a logging bus (a relay process has no in-process subscriber); pubsub: PubSubEventBus."""
    from keel.cli._outbox import build_event_bus

    assert type(build_event_bus(KeelSettings())).__name__ == "_LoggingEventBus"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # clients connect lazily: nothing is reached
    bus = build_event_bus(KeelSettings(event_bus={"backend": "pubsub", "project_id": "keel-relay"}))
    assert type(bus).__name__ == "PubSubEventBus"
    await bus.close()


async def pending(uow_factory: Callable[[], AppUnitOfWork], factory: async_sessionmaker[AsyncSession]) -> object:
    from keel.outbox import outbox_status

    return (await outbox_status(factory)).pending


@pytest.mark.slow
def test_python_m_keel_outbox_relay_runs_until_sigterm(database_url: str) -> None:
    """`python -m keel outbox relay` publishes what is committed, from KEEL_* settings alone, and exits 0 on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import time

    on_database(database_url, two_allocations)
    env = {**os.environ, "KEEL_DATABASE__URL": database_url, "KEEL_OUTBOX__POLL_INTERVAL": "0.05"}
    process = subprocess.Popen([sys.executable, "-m", "keel", "outbox", "relay"], env=env)
    try:
        give_up = time.monotonic() + 30
        while on_database(database_url, pending) != 0:
            assert time.monotonic() < give_up, "the relay published nothing"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
