"""PubSubEventBus against the emulator: failures become keel errors, and a publish recovers from them."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from keel import ConfigurationError, InfrastructureError, PublishError
from keel.config import EventBusSettings
from keel.event_bus import PubSubEventBus, build_event_bus
from tests.contract.event_buses import PROJECT, Collector, bus_settings, message
from tests.support.services import pubsub_emulator_host

pytestmark = pytest.mark.pubsub


@pytest.fixture
async def bus() -> AsyncIterator[PubSubEventBus]:
    pubsub_emulator_host()
    bus = PubSubEventBus(bus_settings(ordering_enabled=True))
    yield bus
    await bus.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_broker_is_a_retryable_publish_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening at PUBSUB_EMULATOR_HOST: PublishError with retryable=True, within the timeouts."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{closed_port()}")
    bus = PubSubEventBus(bus_settings(request_timeout=1.0, publish_timeout=1.0))
    started = time.monotonic()
    with pytest.raises(PublishError) as raised:
        await bus.publish(message("orders-unreachable"))
    assert raised.value.retryable is True
    assert raised.value.details["topic"] == "orders-unreachable"
    assert "detail" in raised.value.diagnostics  # the client's own words, for logs only
    with pytest.raises(InfrastructureError) as refused:
        await bus.subscribe("orders-unreachable", "billing-unreachable", Collector(), max_delivery_attempts=0)
    assert refused.value.details["retryable"] is True
    assert refused.value.details["subscription"] == "billing-unreachable"
    assert time.monotonic() - started < 30
    await bus.close()


async def test_a_publish_after_the_topic_vanished_recreates_it_and_resumes_the_ordering_key(
    bus: PubSubEventBus,
) -> None:
    """The topic deleted under a keyed publish: one non-retryable PublishError, then publishing works again."""
    topic = f"orders-vanishing-{time.monotonic_ns()}"
    collector = Collector()
    await bus.publish(message(topic, b"before", key="lamp"))
    await asyncio.to_thread(bus._publisher.delete_topic, topic=bus._admin.topic_path(topic))
    with pytest.raises(PublishError) as raised:
        await bus.publish(message(topic, b"lost", key="lamp"))
    assert raised.value.retryable is False
    await bus.subscribe(topic, f"billing-{time.monotonic_ns()}", collector)
    await bus.publish(message(topic, b"after", key="lamp"))
    await collector.wait_for_count(1)
    assert collector.data() == [b"after"]
    assert collector.received[0].ordering_key == "lamp"


async def test_pubsub_refuses_fewer_than_five_delivery_attempts(bus: PubSubEventBus) -> None:
    """max_delivery_attempts=3 is a ConfigurationError before any subscription is created."""
    with pytest.raises(ConfigurationError, match="5 to 100"):
        await bus.subscribe("orders-attempts", "billing-attempts", Collector(), max_delivery_attempts=3)


async def test_build_event_bus_makes_a_pubsub_bus_for_the_pubsub_backend() -> None:
    """backend=pubsub gives a PubSubEventBus on the configured project."""
    pubsub_emulator_host()
    bus = build_event_bus(EventBusSettings(backend="pubsub", project_id=PROJECT))
    assert isinstance(bus, PubSubEventBus)
    assert bus.project_id == PROJECT
    await bus.close()
    await bus.close()  # closing twice is harmless


def test_a_pubsub_bus_needs_a_project_id() -> None:
    """Without a project id anywhere: ConfigurationError naming KEEL_EVENT_BUS__PROJECT_ID."""
    with pytest.raises(ConfigurationError, match="KEEL_EVENT_BUS__PROJECT_ID"):
        PubSubEventBus(EventBusSettings())
