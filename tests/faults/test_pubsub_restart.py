"""The Pub/Sub emulator stopped and started while the outbox relay publishes: no event is lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.config import OutboxSettings
from keel.event_bus import PubSubEventBus
from keel.outbox import OutboxRelay, outbox_status
from tests.contract.event_buses import Collector, bus_settings
from tests.integration.outbox.conftest import allocate, outbox_rows, seed
from tests.integration.outbox.conftest import uow_factory as uow_factory
from tests.models import AppUnitOfWork
from tests.support.polling import eventually
from tests.support.pubsub_emulator import PrivateEmulator
from tests.support.pubsub_emulator import private_pubsub as private_pubsub

pytestmark = [pytest.mark.postgres, pytest.mark.pubsub, pytest.mark.slow]

TOPIC = "allocations"  # the outbox conftest's route
#: No waits between attempts and never parked: the outage lasts as long as the test makes it.
RELAY = OutboxSettings(poll_interval=0.05, backoff_initial=0, backoff_max=0, jitter=0, max_attempts=1000)


async def subscribed(collector: Collector, name: str) -> PubSubEventBus:
    """A consumer's bus with its subscription (re)created, as a consumer process does when it starts."""
    consumer = PubSubEventBus(bus_settings(request_timeout=5.0, shutdown_timeout=2.0))
    await consumer.subscribe(TOPIC, name, collector)
    return consumer


async def relay_until_drained(relay: OutboxRelay, session_factory: async_sessionmaker[AsyncSession]) -> None:
    async def drained() -> bool:
        await relay.process_batch()
        return (await outbox_status(session_factory)).pending == 0

    await eventually(drained, timeout=30, interval=0.05)


async def test_every_outbox_row_reaches_the_subscriber_across_a_broker_restart(
    uow_factory: Callable[[], AppUnitOfWork],
    session_factory: async_sessionmaker[AsyncSession],
    private_pubsub: PrivateEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows committed before, during and after the outage: publishes fail retryably while the broker is down,
    those rows stay pending, and after the restart every row is delivered at least once and ends published."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", private_pubsub.host)
    publisher = PubSubEventBus(bus_settings(request_timeout=2.0, publish_timeout=2.0, shutdown_timeout=2.0))
    relay = OutboxRelay(publisher, session_factory, settings=RELAY)
    collector = Collector()
    consumer = await subscribed(collector, "billing-before")
    try:
        await seed(uow_factory, "LAMP", "DESK")
        await allocate(uow_factory, "LAMP", times=5)
        await relay_until_drained(relay, session_factory)
        await collector.wait_for_count(5)
        await consumer.close()

        private_pubsub.stop()
        await allocate(uow_factory, "DESK", times=5)
        result = await relay.process_batch()
        # The first failure holds the rest of its ordering key back, so one row fails and four wait.
        assert (result.published, result.failed) == (0, 1), "a publish to a dead broker was marked published"
        assert (await outbox_status(session_factory)).pending == 5

        # The emulator forgets everything: its topic and the consumer's subscription are made again.
        private_pubsub.start()
        consumer = await subscribed(collector, "billing-after")
        await allocate(uow_factory, "LAMP", times=5)
        await relay_until_drained(relay, session_factory)
        rows = await outbox_rows(session_factory)
        assert len(rows) == 15
        assert {row["status"] for row in rows} == {"published"}
        expected = {str(row["id"]) for row in rows}
        await collector.wait_for(lambda received: {m.attributes.get("event_id") for m in received} >= expected)
    finally:
        await consumer.close()
        await publisher.close()
