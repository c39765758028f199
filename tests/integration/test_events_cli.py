"""`keel events replay|status` on a SQLite database named by KEEL_DATABASE__URL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.cli import cli
from keel.config import DatabaseSettings
from keel.event_store import NO_STREAM, ProjectionRunner, SqlAlchemyEventStore
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, keel_metadata
from tests.contract.event_store_models import Deposited, Opened
from tests.contract.projection_models import LedgerProjection, rows_of
from tests.support.polling import eventually

T = TypeVar("T")
Factory = async_sessionmaker[AsyncSession]
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
SPEC = "tests.support.projection_workers:PROJECTIONS"


@pytest.fixture(autouse=True)
def keel_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE__URL", database_url)
    monkeypatch.setenv("KEEL_EVENT_STORE__PROJECTIONS", SPEC)
    monkeypatch.setenv("KEEL_EVENT_STORE__PROJECTION_BATCH_SIZE", "10")


def on_database(url: str, steps: Callable[[Factory], Awaitable[T]]) -> T:
    """Run ``steps`` on the test's database (in a loop of its own, as the CLI runs in its own)."""

    async def run() -> T:
        engine = create_engine(DatabaseSettings(url=url))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
                await conn.run_sync(keel_metadata.create_all)
            return await steps(create_session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def seeded(streams: int) -> Callable[[Factory], Awaitable[None]]:
    async def seed(factory: Factory) -> None:
        await SqlAlchemyEventStore(factory).append_many(
            (f"acc-{s}", [Opened(owner="o"), *(Deposited(amount=d) for d in range(9))], NO_STREAM)
            for s in range(streams)
        )

    return seed


async def ledger_positions(factory: Factory) -> list[int]:
    async with factory() as session:
        return [row[0] for row in await rows_of(session, "ledger")]


async def all_positions(factory: Factory) -> list[int]:
    return [r.position for r in await SqlAlchemyEventStore(factory).read_all()]


def test_status_shows_checkpoint_head_and_lag_as_text_and_json(database_url: str) -> None:
    """`keel events status` lists each configured projection with its checkpoint, the head and the lag."""
    on_database(database_url, seeded(3))

    async def half(factory: Factory) -> None:
        await ProjectionRunner(factory, [LedgerProjection()], batch_size=10).step("ledger")

    on_database(database_url, half)
    text = CliRunner().invoke(cli, ["events", "status"])
    assert text.exit_code == 0, text.output
    assert text.output.splitlines()[1].split() == ["ledger", "10", "30", "20"]
    as_json = CliRunner().invoke(cli, ["events", "status", "--json"])
    assert json.loads(as_json.output) == [{"name": "ledger", "position": 10, "head": 30, "lag": 20, "replaying": False}]


def test_replay_rebuilds_a_projection_with_a_progress_bar(database_url: str) -> None:
    """`keel events replay NAME` empties the read model, applies every event and says where it ended."""
    on_database(database_url, seeded(4))
    result = CliRunner().invoke(cli, ["events", "replay", "ledger"])
    assert result.exit_code == 0, result.output
    assert "ledger replayed up to position 40" in result.output
    assert on_database(database_url, ledger_positions) == on_database(database_url, all_positions)
    again = CliRunner().invoke(cli, ["events", "replay", "ledger", "--quiet"])
    assert again.exit_code == 0, again.output
    assert on_database(database_url, ledger_positions) == on_database(database_url, all_positions)


def test_unknown_projection_and_bad_setting_are_clear_errors(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown NAME lists the known ones; a bad KEEL_EVENT_STORE__PROJECTIONS entry names itself."""
    on_database(database_url, seeded(1))
    unknown = CliRunner().invoke(cli, ["events", "replay", "nope"])
    assert unknown.exit_code == 1
    assert "no projection named 'nope' (known: ledger)" in unknown.output
    monkeypatch.setenv("KEEL_EVENT_STORE__PROJECTIONS", "tests.support.projection_workers:MISSING")
    missing = CliRunner().invoke(cli, ["events", "status"])
    assert missing.exit_code == 1
    assert "cannot load projections from 'tests.support.projection_workers:MISSING'" in missing.output


@pytest.mark.slow
def test_a_replay_stopped_by_sigterm_resumes_from_its_checkpoint(database_url: str) -> None:
    """SIGTERM mid-replay exits 130 with a hint; the next `keel events replay` continues, never restarting at 0."""
    on_database(database_url, seeded(30))
    env = {
        **os.environ,
        "KEEL_EVENT_STORE__PROJECTIONS": "tests.support.slow_projection:SlowLedger",
        "PROJECTION_TEST_DELAY": "0.01",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "events", "replay", "ledger", "--quiet"], env=env, stderr=subprocess.PIPE
    )
    try:

        async def some(factory: Factory) -> None:
            async def fifty() -> bool:
                return len(await ledger_positions(factory)) >= 50

            await eventually(fifty, timeout=30)

        on_database(database_url, some)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert b"run `keel events replay ledger` again to resume" in err
    done = len(on_database(database_url, ledger_positions))
    assert 50 <= done < 300
    status = json.loads(CliRunner().invoke(cli, ["events", "status", "--json"]).output)
    assert status == [{"name": "ledger", "position": done, "head": 300, "lag": 300 - done, "replaying": True}]
    resumed = CliRunner().invoke(cli, ["events", "replay", "ledger", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert on_database(database_url, ledger_positions) == on_database(database_url, all_positions)
