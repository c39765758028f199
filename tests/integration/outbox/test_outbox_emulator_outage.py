"""The broker away for ten seconds mid-run: the relay backs off, loses nothing, and resumes (issue 10).

The test starts an emulator of its own on a free port and freezes it
(SIGSTOP to its process group) while a ``keel outbox relay`` process is
publishing and commands keep committing; after ten seconds it thaws it. The
shared emulator of ``./scripts/test`` is never touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.event_bus import PubSubEventBus
from keel.outbox import outbox_status
from tests.integration.outbox.acceptance import (
    TOPIC,
    CountingConsumer,
    PrivateEmulator,
    commit_concurrently,
    counter,
    create_counter,
    event_count,
    relay_environment,
    start_relay,
    subscriber_settings,
)
from tests.models import AppUnitOfWork
from tests.support.polling import eventually

pytestmark = [pytest.mark.slow, pytest.mark.pubsub]
OUTAGE = 10.0


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_the_relay_backs_off_while_the_emulator_is_stopped_and_resumes_losing_nothing(
    database_url: str,
    engine: AsyncEngine,
    uow_factory: Callable[[], AppUnitOfWork],
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events committed before and during a 10 s outage all arrive once it ends, each applied once."""
    half = event_count() // 5  # two runs of commands: 400 events each by default
    emulator = PrivateEmulator(tmp_path / "emulator.log")
    relay_log = tmp_path / "relay.log"
    relay = None
    try:
        await emulator.started()
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
        project = f"keel-outage-{uuid.uuid4().hex[:10]}"
        await create_counter(engine)
        bus = PubSubEventBus(subscriber_settings(project))
        consumer = CountingConsumer(session_factory)
        subscription = await bus.subscribe(TOPIC, "outage-counter", consumer)
        # Publishing gives up quickly while the broker is away, so the relay's own backoff shows.
        env = relay_environment(
            database_url,
            emulator.host,
            project,
            KEEL_EVENT_BUS__PUBLISH_TIMEOUT="2",
            KEEL_EVENT_BUS__REQUEST_TIMEOUT="2",
        )
        relay = start_relay(env, relay_log)
        await commit_concurrently(uow_factory, half)
        await eventually(lambda: len(consumer.deliveries) == half, timeout=60)

        emulator.freeze()
        back_at = time.monotonic() + OUTAGE
        try:
            await commit_concurrently(uow_factory, half, run="-outage-")  # committed while the broker is away
            await eventually(lambda: "failed (attempt" in relay_log.read_text(), timeout=OUTAGE + 20)
            assert len(consumer.deliveries) == half
            await eventually(lambda: time.monotonic() >= back_at, timeout=OUTAGE + 5)
        finally:
            emulator.thaw()

        await eventually(lambda: len(consumer.deliveries) == 2 * half, timeout=90)
        await eventually(lambda: _counted(engine, 2 * half), timeout=60)
        status = await outbox_status(session_factory)
        assert (status.pending, status.parked) == (0, 0)
        assert relay.poll() is None, relay_log.read_text()[-3000:]
        await subscription.stop()
        await bus.close()
    finally:
        if relay is not None and relay.poll() is None:
            relay.terminate()
            code = relay.wait(timeout=30)
            assert code == 0, relay_log.read_text()[-3000:]
        emulator.stop()
    assert await counter(engine) == 2 * half


async def _counted(engine: AsyncEngine, expected: int) -> bool:
    return await counter(engine) == expected
