"""The outbox's acceptance runs on PostgreSQL and the Pub/Sub emulator (issue 10).

Concurrent commands commit events; two ``keel outbox relay`` processes
publish them, one of them SIGKILLed mid-batch three times and restarted;
every message reaches the subscriber at least once and the idempotent
consumer applies each exactly once. A handler that always fails sends its
message to the dead-letter topic with the original attributes. Sizes: see
:func:`tests.integration.outbox.acceptance.event_count`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.domain.ports import IncomingMessage
from keel.event_bus import PubSubEventBus
from keel.outbox import OutboxRelay, outbox_status
from tests.integration.outbox.acceptance import (
    TOPIC,
    CountingConsumer,
    commit_concurrently,
    counter,
    create_counter,
    event_count,
    relay_environment,
    start_relay,
    subscriber_settings,
)
from tests.integration.outbox.conftest import allocate, seed
from tests.models import AppUnitOfWork
from tests.support.polling import eventually
from tests.support.services import pubsub_emulator_host

pytestmark = [pytest.mark.slow, pytest.mark.pubsub]
POSTGRES_ONLY = pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
KILLS = 3


def project() -> str:
    return f"keel-acceptance-{uuid.uuid4().hex[:10]}"


@POSTGRES_ONLY
async def test_two_relays_one_killed_three_times_deliver_every_event_and_the_inbox_applies_each_once(
    database_url: str,
    engine: AsyncEngine,
    uow_factory: Callable[[], AppUnitOfWork],
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """N events, two relay processes, SIGKILL x3 mid-run: all delivered at least once, the counter ends at N."""
    events = event_count()
    emulator, name = pubsub_emulator_host(), project()
    await create_counter(engine)
    bus = PubSubEventBus(subscriber_settings(name))
    consumer = CountingConsumer(session_factory)
    subscription = await bus.subscribe(TOPIC, "acceptance-counter", consumer)  # before anything is published
    await commit_concurrently(uow_factory, events)
    env = relay_environment(database_url, emulator, name)
    steady = start_relay(env, tmp_path / "steady.log")
    victim = start_relay(env, tmp_path / "victim.log")
    try:
        for kill in range(KILLS):
            # Kill while the relays are publishing: a batch is in hand, claimed and partly sent.
            target = len(consumer.deliveries) + events // (KILLS + 2)
            await eventually(lambda: len(consumer.deliveries) >= target, timeout=60)  # noqa: B023
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(timeout=10) == -signal.SIGKILL, f"kill {kill}"
            victim = start_relay(env, tmp_path / "victim.log")
        await eventually(lambda: len(consumer.deliveries) == events, timeout=120)
        await eventually(lambda: _at(engine, events), timeout=60)
        status = await outbox_status(session_factory)
        assert (status.pending, status.parked) == (0, 0)
    finally:
        codes = []
        for relay in (steady, victim):
            relay.send_signal(signal.SIGTERM)
            codes.append(relay.wait(timeout=30))
        await subscription.stop()
        await bus.close()
    assert codes == [0, 0], (tmp_path / "victim.log").read_text()[-3000:]
    assert len(consumer.deliveries) == events  # every message at least once
    assert await counter(engine) == events  # and applied exactly once


async def _at(engine: AsyncEngine, expected: int) -> bool:
    return await counter(engine) == expected


@POSTGRES_ONLY
async def test_a_handler_that_always_fails_sends_the_message_to_the_dead_letter_topic(
    engine: AsyncEngine,
    uow_factory: Callable[[], AppUnitOfWork],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """After max_delivery_attempts failures the message is dead-lettered, body and attributes intact."""
    pubsub_emulator_host()
    name = project()
    bus = PubSubEventBus(subscriber_settings(name))
    attempts: list[int | None] = []
    dead: asyncio.Queue[IncomingMessage] = asyncio.Queue()

    async def always_fails(message: IncomingMessage) -> None:
        attempts.append(message.delivery_attempt)
        raise RuntimeError("this handler never succeeds")

    async def dead_letters(message: IncomingMessage) -> None:
        await dead.put(message)

    # Unordered: the emulator does not dead-letter messages of an ordered subscription (docs/event-bus.md).
    failing = await bus.subscribe(TOPIC, "acceptance-failing", always_fails, max_delivery_attempts=5)
    # keel made the dead-letter topic and a subscription of the same name on it, with the source subscription.
    watching = await bus.subscribe("acceptance-failing-dead-letter", "acceptance-failing-dead-letter", dead_letters)
    try:
        await seed(uow_factory, "LAMP")
        await allocate(uow_factory, "LAMP")
        assert (await OutboxRelay(bus, session_factory).process_batch()).published == 1
        async with asyncio.timeout(60):
            letter = await dead.get()
    finally:
        await failing.stop()
        await watching.stop()
        await bus.close()
    assert attempts[:5] == [1, 2, 3, 4, 5]
    assert json.loads(letter.data)["sku"] == "LAMP"
    original = {"event_type": "Allocated", "schema_version": "1"}
    assert original.items() <= letter.attributes.items()
    assert letter.attributes["event_id"]
    assert letter.attributes["correlation_id"]
    assert letter.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
