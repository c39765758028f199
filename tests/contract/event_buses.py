"""The two event buses under one contract: fixtures and a collector that waits with deadlines.

``new_bus(**settings)`` builds an :class:`InMemoryEventBus` or a
:class:`PubSubEventBus` on the emulator (``PUBSUB_EMULATOR_HOST``), with small
retry backoffs so redeliveries take well under a second; every bus it builds is
closed after the test. Names are unique per test, and the Pub/Sub project is
unique per session, so tests never see each other's messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from keel.config import EventBusSettings
from keel.domain.ports import EventBus, IncomingMessage, OutgoingMessage
from keel.event_bus import InMemoryEventBus, SubscriptionOptions
from tests.support.services import pubsub_emulator_host

BUSES = ["memory", pytest.param("pubsub", marks=pytest.mark.pubsub)]
PROJECT = f"keel-test-{uuid.uuid4().hex[:8]}"
#: Deadline for anything a test waits for (a delivery, a redelivery, a stop).
DEADLINE = 30.0

NewBus = Callable[..., EventBus]


def bus_settings(**overrides: Any) -> EventBusSettings:
    values: dict[str, Any] = {
        "project_id": PROJECT,
        "retry_min_backoff": 0.0,
        "retry_max_backoff": 0.5,
        "ack_deadline": 10,
        "shutdown_timeout": 10.0,
        "publish_timeout": 10.0,
        "request_timeout": 10.0,
    }
    return EventBusSettings(**{**values, **overrides})


@pytest.fixture(params=BUSES)
def bus_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def new_bus(bus_backend: str) -> AsyncIterator[NewBus]:
    """Builds buses of this test's kind; closes them afterwards."""
    if bus_backend == "pubsub":
        pubsub_emulator_host()
    built: list[EventBus] = []

    def build(**overrides: Any) -> EventBus:
        settings = bus_settings(**overrides)
        bus: EventBus
        if bus_backend == "memory":
            bus = InMemoryEventBus(SubscriptionOptions.from_settings(settings))
        else:
            from keel.event_bus import PubSubEventBus

            bus = PubSubEventBus(settings)
        built.append(bus)
        return bus

    yield build
    for bus in built:
        await bus.close()


@pytest.fixture
def names() -> Callable[[str], str]:
    """``names("orders")`` -> a topic or subscription name no other test uses."""
    suffix = uuid.uuid4().hex[:10]
    return lambda stem: f"{stem}-{suffix}"


def message(topic: str, data: bytes = b"{}", *, key: str | None = None, **attributes: str) -> OutgoingMessage:
    return OutgoingMessage(
        topic=topic, data=data, message_id=str(uuid.uuid4()), attributes=attributes, ordering_key=key
    )


class Collector:
    """A handler that records deliveries; ``fail`` decides which ones it nacks (by raising)."""

    def __init__(self, fail: Callable[[IncomingMessage], bool] = lambda _: False) -> None:
        self.received: list[IncomingMessage] = []
        self.fail = fail
        self._changed = asyncio.Condition()

    async def __call__(self, incoming: IncomingMessage) -> None:
        async with self._changed:
            self.received.append(incoming)
            self._changed.notify_all()
        if self.fail(incoming):
            raise RuntimeError(f"handler refused {incoming.data!r}")

    async def wait_for(self, condition: Callable[[list[IncomingMessage]], bool], timeout: float = DEADLINE) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: condition(self.received))

    async def wait_for_count(self, count: int) -> None:
        await self.wait_for(lambda received: len(received) >= count)

    def data(self) -> list[bytes]:
        return [m.data for m in self.received]
