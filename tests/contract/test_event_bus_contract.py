"""Contract: the in-memory bus and Pub/Sub (on the emulator) deliver, redeliver, dead-letter and stop alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from keel import ConfigurationError, PublishError
from keel.domain.ports import IncomingMessage
from tests.contract.event_buses import Collector, NewBus, message
from tests.contract.event_buses import bus_backend as bus_backend
from tests.contract.event_buses import names as names
from tests.contract.event_buses import new_bus as new_bus

Names = Callable[[str], str]


async def test_a_published_message_reaches_its_subscription_with_data_and_attributes(
    new_bus: NewBus, names: Names
) -> None:
    """The handler gets the body, the attributes plus event_id, the broker's id and the subscription's name."""
    bus = new_bus()
    topic, subscription = names("orders"), names("billing")
    collector = Collector()
    await bus.subscribe(topic, subscription, collector)
    sent = message(topic, b'{"orderid": "o1"}', event_type="OrderPlaced", schema_version="1")
    broker_id = await bus.publish(sent)
    await collector.wait_for_count(1)
    [got] = collector.received
    assert got.data == b'{"orderid": "o1"}'
    assert {"event_type": "OrderPlaced", "schema_version": "1", "event_id": sent.message_id}.items() <= (
        got.attributes.items()
    )
    assert got.message_id == broker_id
    assert got.subscription == subscription
    assert got.publish_time is not None
    assert got.ordering_key is None


async def test_every_subscription_of_a_topic_gets_its_own_copy(new_bus: NewBus, names: Names) -> None:
    """Two subscriptions on one topic each receive the message."""
    bus = new_bus()
    topic = names("orders")
    first, second = Collector(), Collector()
    await bus.subscribe(topic, names("billing"), first)
    await bus.subscribe(topic, names("shipping"), second)
    await bus.publish(message(topic, b"one"))
    await first.wait_for_count(1)
    await second.wait_for_count(1)
    assert first.data() == second.data() == [b"one"]


async def test_a_nacked_message_is_redelivered_with_a_growing_delivery_attempt(new_bus: NewBus, names: Names) -> None:
    """A handler that raises twice sees the message three times, attempts 1, 2, 3, and then acks it."""
    bus = new_bus()
    topic = names("orders")
    collector = Collector(fail=lambda m: (m.delivery_attempt or 0) < 3)
    await bus.subscribe(topic, names("billing"), collector)
    await bus.publish(message(topic, b"retry me"))
    await collector.wait_for_count(3)
    assert [m.delivery_attempt for m in collector.received[:3]] == [1, 2, 3]
    assert {m.data for m in collector.received} == {b"retry me"}


async def test_a_message_its_handler_always_refuses_ends_on_the_dead_letter_topic(
    new_bus: NewBus, names: Names
) -> None:
    """After max_delivery_attempts nacks, the message is on the dead-letter topic with its body and attributes."""
    bus = new_bus()
    topic, subscription = names("orders"), names("billing")
    refusing = Collector(fail=lambda _: True)
    await bus.subscribe(topic, subscription, refusing, max_delivery_attempts=5)
    dead = Collector()
    # Created with the subscription above: a subscription of the dead-letter topic's own name keeps the messages.
    dead_letter = f"{subscription}-dead-letter"
    await bus.subscribe(dead_letter, dead_letter, dead)
    await bus.publish(message(topic, b"poison", event_type="OrderPlaced", correlation_id="c-1"))
    await dead.wait_for_count(1)
    [letter] = dead.received
    assert letter.data == b"poison"
    assert {"event_type": "OrderPlaced", "correlation_id": "c-1"}.items() <= letter.attributes.items()
    assert letter.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert [m.delivery_attempt for m in refusing.received] == [1, 2, 3, 4, 5]


async def test_messages_of_one_ordering_key_arrive_in_publish_order(new_bus: NewBus, names: Names) -> None:
    """With ordering on, each key's messages reach the handler in the order they were published."""
    bus = new_bus(ordering_enabled=True)
    topic = names("orders")
    collector = Collector()
    await bus.subscribe(topic, names("billing"), collector)
    for n in range(15):
        for key in ("lamp", "desk"):
            await bus.publish(message(topic, f"{key}-{n}".encode(), key=key))
    await collector.wait_for_count(30)
    for key in ("lamp", "desk"):
        got = [m.data.decode() for m in collector.received if m.ordering_key == key]
        assert got == [f"{key}-{n}" for n in range(15)]


async def test_stop_lets_the_handler_in_hand_finish_and_takes_no_new_messages(new_bus: NewBus, names: Names) -> None:
    """stop() waits for the running handler (which then acks); later messages go to the next consumer."""
    bus = new_bus()
    topic, subscription = names("orders"), names("billing")
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[bytes] = []

    async def slow(incoming: IncomingMessage) -> None:
        started.set()
        await release.wait()
        finished.append(incoming.data)

    running = await bus.subscribe(topic, subscription, slow)
    await bus.publish(message(topic, b"first"))
    async with asyncio.timeout(30):
        await started.wait()
    stopping = asyncio.create_task(running.stop())
    for _ in range(20):  # give stop() every chance to return early
        await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    async with asyncio.timeout(30):
        await stopping
    assert finished == [b"first"]

    await bus.publish(message(topic, b"second"))
    after = Collector()
    await bus.subscribe(topic, subscription, after)
    await after.wait_for(lambda received: b"second" in [m.data for m in received])
    assert finished == [b"first"]
    assert b"first" not in after.data()


async def test_a_handler_still_running_at_the_shutdown_timeout_is_cancelled_and_its_message_redelivered(
    new_bus: NewBus, names: Names
) -> None:
    """stop() cancels a handler that outlives shutdown_timeout; the message goes to the next consumer."""
    bus = new_bus()
    topic, subscription = names("orders"), names("billing")
    started = asyncio.Event()

    async def stuck(incoming: IncomingMessage) -> None:
        started.set()
        await asyncio.Event().wait()

    running = await bus.subscribe(topic, subscription, stuck, shutdown_timeout=0.2)
    await bus.publish(message(topic, b"kept"))
    async with asyncio.timeout(30):
        await started.wait()
    await running.stop()
    after = Collector()
    await bus.subscribe(topic, subscription, after)
    await after.wait_for_count(1)
    assert after.received[0].data == b"kept"
    assert after.received[0].delivery_attempt == 2


async def test_flow_control_bounds_the_messages_a_consumer_holds(new_bus: NewBus, names: Names) -> None:
    """flow_control_max_messages=2: never more than two handlers run at once, and every message is handled."""
    bus = new_bus()
    topic = names("orders")
    running, most = 0, 0
    collector = Collector()

    async def handler(incoming: IncomingMessage) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(3):  # hold the message across a few loop turns, so others could start meanwhile
            await asyncio.sleep(0)
        running -= 1
        await collector(incoming)

    await bus.subscribe(topic, names("billing"), handler, flow_control_max_messages=2)
    await asyncio.gather(*(bus.publish(message(topic, str(n).encode())) for n in range(12)))
    await collector.wait_for(lambda received: len({m.data for m in received}) == 12)
    assert 1 <= most <= 2


async def test_concurrent_first_uses_create_each_topic_and_subscription_once(new_bus: NewBus, names: Names) -> None:
    """Two buses (two processes, as far as the broker knows) race to create the same names: no error, no loss."""
    buses = [new_bus(), new_bus()]
    topic, subscription = names("orders"), names("billing")
    collector = Collector()
    await asyncio.gather(*(buses[n % 2].subscribe(topic, subscription, collector) for n in range(6)))
    sent = [message(topic, f"m{n}".encode()) for n in range(20)]
    await asyncio.gather(*(buses[n % 2].publish(m) for n, m in enumerate(sent)))
    await collector.wait_for(lambda received: {m.data for m in received} == {m.data for m in sent})


async def test_a_handler_that_raises_does_not_stop_its_subscriber(new_bus: NewBus, names: Names) -> None:
    """Messages after one whose handler keeps failing are still handled."""
    bus = new_bus()
    topic = names("orders")
    collector = Collector(fail=lambda m: m.data == b"bad")
    await bus.subscribe(topic, names("billing"), collector, max_delivery_attempts=0)
    await bus.publish(message(topic, b"bad"))
    await collector.wait_for_count(1)
    for n in range(5):
        await bus.publish(message(topic, f"good-{n}".encode()))
    await collector.wait_for(lambda received: {f"good-{n}".encode() for n in range(5)} <= {m.data for m in received})
    assert collector.data().count(b"bad") >= 2  # it kept being redelivered meanwhile


async def test_a_closed_bus_refuses_to_publish(new_bus: NewBus, names: Names) -> None:
    """publish after close() raises PublishError, which is not retryable."""
    bus = new_bus()
    await bus.close()
    with pytest.raises(PublishError) as raised:
        await bus.publish(message(names("orders")))
    assert raised.value.retryable is False


@pytest.mark.parametrize("topic", ["ab", "1orders", "goog-orders", "orders/x", "x" * 256])
async def test_a_topic_name_pubsub_would_refuse_is_a_configuration_error(new_bus: NewBus, topic: str) -> None:
    """Names are checked against Pub/Sub's rule on both buses, before any broker call."""
    bus = new_bus()
    with pytest.raises(ConfigurationError):
        await bus.publish(message(topic))
    with pytest.raises(ConfigurationError):
        await bus.subscribe(topic, "valid-name", Collector())


@pytest.mark.parametrize(
    "attributes",
    [{"timeout": "1"}, {"googclient_x": "1"}, {"k": "v" * 1025}, {f"a{n}": "v" for n in range(100)}],
    ids=["reserved", "goog-prefix", "long-value", "too-many"],
)
async def test_attributes_pubsub_would_refuse_are_a_publish_error(
    new_bus: NewBus, names: Names, attributes: dict[str, str]
) -> None:
    """Reserved, oversized or too many attributes: PublishError (not retryable) on both buses."""
    bus = new_bus()
    with pytest.raises(PublishError) as raised:
        await bus.publish(message(names("orders"), **attributes))  # type: ignore[arg-type]
    assert raised.value.retryable is False


async def test_an_unknown_subscribe_option_is_a_configuration_error(new_bus: NewBus, names: Names) -> None:
    """A misspelt option fails loudly instead of being ignored."""
    bus = new_bus()
    with pytest.raises(ConfigurationError, match="max_delivery_attempt"):
        await bus.subscribe(names("orders"), names("billing"), Collector(), max_delivery_attempt=5)
