"""Both event buses satisfy the EventBus port (checked by mypy) and hand out Subscriptions."""

from __future__ import annotations

from keel.domain.ports import EventBus, Subscription
from keel.event_bus import InMemoryEventBus, PubSubEventBus


def as_port(bus: EventBus) -> EventBus:
    """mypy checks each call: the argument must satisfy the port, subscribe's result included."""
    return bus


def pubsub_as_port(bus: PubSubEventBus) -> EventBus:
    # Statically only: building a PubSubEventBus needs credentials or an emulator.
    return bus


async def test_both_buses_satisfy_the_event_bus_port() -> None:
    """InMemoryEventBus and PubSubEventBus are EventBus; a subscription is a Subscription."""
    bus = as_port(InMemoryEventBus())

    async def ignore(message: object) -> None:
        return None

    subscription: Subscription = await bus.subscribe("orders", "billing", ignore)
    await subscription.stop()
    await bus.close()
    assert callable(pubsub_as_port)
