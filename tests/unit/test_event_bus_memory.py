"""The in-memory bus's own behaviour: backoff, flow control, shared subscriptions, stop, and its helpers."""

from __future__ import annotations

import asyncio
import time

import pytest

from keel import ConfigurationError
from keel.domain.ports import IncomingMessage, OutgoingMessage
from keel.event_bus import InMemoryEventBus, SubscriptionOptions
from tests.contract.event_buses import Collector, message


async def test_a_nacked_message_waits_the_subscriptions_backoff_before_it_returns() -> None:
    """With retry_min_backoff 0.2 s, the second delivery comes no sooner than 0.2 s after the first."""
    bus = InMemoryEventBus(SubscriptionOptions(retry_min_backoff=0.2, retry_max_backoff=1.0))
    collector = Collector(fail=lambda m: m.delivery_attempt == 1)
    seen: list[float] = []

    async def timed(incoming: IncomingMessage) -> None:
        seen.append(time.monotonic())
        await collector(incoming)

    await bus.subscribe("orders", "billing", timed)
    await bus.publish(message("orders"))
    await collector.wait_for_count(2)
    assert seen[1] - seen[0] >= 0.2
    await bus.close()


async def test_flow_control_bounds_the_handlers_running_at_once() -> None:
    """flow_control_max_messages=2: never more than two handlers run, and all messages are handled."""
    bus = InMemoryEventBus()
    running, most, done = 0, 0, asyncio.Event()
    handled: list[bytes] = []

    async def handler(incoming: IncomingMessage) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)  # let the subscriber try to start more
        running -= 1
        handled.append(incoming.data)
        if len(handled) == 10:
            done.set()

    await bus.subscribe("orders", "billing", handler, flow_control_max_messages=2)
    for n in range(10):
        await bus.publish(message("orders", str(n).encode()))
    async with asyncio.timeout(10):
        await done.wait()
    assert most == 2
    await bus.close()


async def test_consumers_of_one_subscription_share_its_messages() -> None:
    """Two consumers on one subscription: each message is handled once, by one of them."""
    bus = InMemoryEventBus()
    first, second = Collector(), Collector()
    await bus.subscribe("orders", "billing", first)
    await bus.subscribe("orders", "billing", second)
    for n in range(20):
        await bus.publish(message("orders", str(n).encode()))
    await first.wait_for(lambda _: len(first.received) + len(second.received) == 20)
    assert sorted(first.data() + second.data()) == sorted(str(n).encode() for n in range(20))
    await bus.close()


async def test_stop_cancels_a_handler_that_outlives_the_shutdown_timeout_and_keeps_its_message() -> None:
    """A handler still running after shutdown_timeout is cancelled; its message stays for the next consumer."""
    bus = InMemoryEventBus()
    started = asyncio.Event()

    async def stuck(incoming: IncomingMessage) -> None:
        started.set()
        await asyncio.Event().wait()

    running = await bus.subscribe("orders", "billing", stuck, shutdown_timeout=0.05)
    await bus.publish(message("orders", b"kept"))
    async with asyncio.timeout(10):
        await started.wait()
    await running.stop()
    assert bus.backlog("billing") == 1
    after = Collector()
    await bus.subscribe("orders", "billing", after)
    await after.wait_for_count(1)
    assert after.received[0].data == b"kept"
    assert after.received[0].delivery_attempt == 2
    await bus.close()


async def test_tests_can_inspect_what_was_published_and_created() -> None:
    """published lists messages in order; topics() and subscriptions() include the dead-letter pair."""
    bus = InMemoryEventBus()
    await bus.subscribe("orders", "billing", Collector())
    sent = message("orders", b"1")
    assert await bus.publish(sent) == "1"
    assert bus.published == [sent]
    assert bus.topics() == ["billing-dead-letter", "orders"]
    assert bus.subscriptions() == ["billing", "billing-dead-letter"]
    assert bus.subscriptions("orders") == ["billing"]
    await bus.close()


async def test_a_message_published_before_its_subscription_exists_is_not_delivered() -> None:
    """As on Pub/Sub, a subscription receives only what is published after it is created."""
    bus = InMemoryEventBus()
    await bus.publish(message("orders", b"early"))
    collector = Collector()
    await bus.subscribe("orders", "billing", collector)
    await bus.publish(message("orders", b"late"))
    await collector.wait_for_count(1)
    assert collector.data() == [b"late"]
    await bus.close()


async def test_without_ordering_the_ordering_key_is_not_sent() -> None:
    """ordering_enabled=False (the default) drops ordering keys, as the Pub/Sub bus does."""
    bus = InMemoryEventBus()
    collector = Collector()
    await bus.subscribe("orders", "billing", collector)
    await bus.publish(OutgoingMessage(topic="orders", data=b"x", message_id="m1", ordering_key="lamp"))
    await collector.wait_for_count(1)
    assert collector.received[0].ordering_key is None
    await bus.close()


async def test_the_in_memory_bus_dead_letters_after_any_positive_number_of_attempts() -> None:
    """Unlike Pub/Sub (5 to 100), the fake accepts max_delivery_attempts=2, for short unit tests."""
    bus = InMemoryEventBus()
    dead = Collector()
    await bus.subscribe("orders", "billing", Collector(fail=lambda _: True), max_delivery_attempts=2)
    await bus.subscribe("billing-dead-letter", "billing-dead-letter", dead)
    await bus.publish(message("orders", b"poison"))
    await dead.wait_for_count(1)
    assert dead.received[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "2"
    await bus.close()


@pytest.mark.parametrize(
    "options",
    [{"retry_min_backoff": 2.0, "retry_max_backoff": 1.0}, {"max_delivery_attempts": -1}, {"shutdown_timeout": 0}],
)
async def test_bad_subscription_options_are_a_configuration_error(options: dict[str, float]) -> None:
    """Inconsistent backoffs, negative attempts or a zero timeout are refused when subscribing."""
    bus = InMemoryEventBus()
    with pytest.raises(ConfigurationError):
        await bus.subscribe("orders", "billing", Collector(), **options)


def test_the_redelivery_backoff_doubles_up_to_its_maximum() -> None:
    """min 1 s, max 5 s: 1, 2, 4, 5, 5."""
    options = SubscriptionOptions(retry_min_backoff=1.0, retry_max_backoff=5.0)
    assert [options.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_dead_letter_template_with_an_unknown_placeholder_is_a_configuration_error() -> None:
    """``{queue}`` is neither ``{subscription}`` nor ``{topic}``."""
    with pytest.raises(ConfigurationError):
        SubscriptionOptions(dead_letter_topic="{queue}-dead").dead_letter_name("orders", "billing")
    dotted = SubscriptionOptions(dead_letter_topic="{topic}.{subscription}.dlq")
    assert dotted.dead_letter_name("orders", "billing") == "orders.billing.dlq"
    assert SubscriptionOptions(max_delivery_attempts=0).dead_letter_name("orders", "billing") is None
