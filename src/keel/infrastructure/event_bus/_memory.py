"""``InMemoryEventBus``: Pub/Sub's delivery semantics inside one process.

The embedded default (nothing to install, nothing to run) and the fake for
users' unit tests. It behaves like a Pub/Sub subscription where that makes
sense in one process: a message reaches every subscription that existed when
it was published; a handler that raises nacks it, and it comes back after the
subscription's backoff with a higher ``delivery_attempt``; after
``max_delivery_attempts`` it moves to the dead-letter topic with Pub/Sub's
``CloudPubSubDeadLetter*`` attributes; ordered subscriptions hand out one
message per ordering key at a time; consumers of one subscription share its
messages; ``stop()`` lets the running handlers finish. Nothing is persisted.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keel._event_bus_settings import EventBusSettings
from keel.cross_cutting.error import PublishError
from keel.cross_cutting.telemetry import start_consumer_span, start_producer_span
from keel.domain.ports import IncomingMessage, MessageHandler, OutgoingMessage
from keel.infrastructure.event_bus._options import SubscriptionOptions, check_name, outgoing_attributes
from keel.infrastructure.event_bus._running import RunningHandlers
from keel.infrastructure.event_bus._spans import consume_span_attributes, publish_span_attributes

logger = logging.getLogger("keel.event_bus")


@dataclass(eq=False)
class _Pending:
    """One message waiting in (or handed out by) one subscription."""

    seq: int
    data: bytes
    attributes: dict[str, str]
    message_id: str
    ordering_key: str | None
    publish_time: datetime
    attempts: int = 0
    not_before: float = 0.0


@dataclass(eq=False)
class _SubscriptionState:
    """A subscription's configuration and backlog, shared by every consumer of it."""

    name: str
    topic: str
    options: SubscriptionOptions
    dead_letter_topic: str | None
    backlog: list[_Pending] = field(default_factory=list)
    busy_keys: set[str] = field(default_factory=set)
    #: One event per running consumer (each created on its consumer's loop), set on every change.
    waiters: set[asyncio.Event] = field(default_factory=set)

    def notify(self) -> None:
        for waiter in self.waiters:
            waiter.set()

    def put(self, item: _Pending) -> None:
        # Kept in publish order, so a redelivered message goes back before later ones of its key.
        if self.backlog and self.backlog[-1].seq > item.seq:
            self.backlog.insert(bisect.bisect(self.backlog, item.seq, key=lambda other: other.seq), item)
        else:
            self.backlog.append(item)
        self.notify()

    def take(self, now: float) -> _Pending | None:
        """The first deliverable message: due, and (when ordered) first of a key not in hand."""
        blocked: set[str] = set()
        for index, item in enumerate(self.backlog):
            key = item.ordering_key if self.options.ordering_enabled else None
            if key is not None and (key in self.busy_keys or key in blocked):
                continue
            if item.not_before > now:
                if key is not None:
                    blocked.add(key)
                continue
            del self.backlog[index]
            if key is not None:
                self.busy_keys.add(key)
            return item
        return None

    def next_due(self, now: float) -> float | None:
        """When the next backed-off message becomes due (due ones held back by their key wait for a release)."""
        return min((item.not_before for item in self.backlog if item.not_before > now), default=None)

    def release(self, item: _Pending) -> None:
        if item.ordering_key is not None:
            self.busy_keys.discard(item.ordering_key)
        self.notify()


class InMemoryEventBus:
    """An :class:`~keel.domain.ports.EventBus` in this process's memory.

    ``defaults`` are the subscription options (backoff, dead-lettering,
    ordering, flow control); without them redelivery is immediate, so unit
    tests need no clock. ``published`` lists every message published, in
    order, for tests to inspect.
    """

    def __init__(self, defaults: SubscriptionOptions | None = None) -> None:
        self.defaults = defaults or SubscriptionOptions(retry_min_backoff=0.0, retry_max_backoff=0.0)
        self.defaults.check()
        self.published: list[OutgoingMessage] = []
        self._topics: dict[str, list[_SubscriptionState]] = {}
        self._subscriptions: dict[str, _SubscriptionState] = {}
        self._consumers: set[InMemorySubscription] = set()
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: EventBusSettings) -> InMemoryEventBus:
        return cls(SubscriptionOptions.from_settings(settings))

    def topics(self) -> list[str]:
        """The topics created so far."""
        return sorted(self._topics)

    def subscriptions(self, topic: str | None = None) -> list[str]:
        """The subscriptions created so far (on ``topic``, when given)."""
        return sorted(name for name, state in self._subscriptions.items() if topic in (None, state.topic))

    def backlog(self, subscription: str) -> int:
        """How many messages ``subscription`` holds that no handler has acknowledged yet (in hand excluded)."""
        return len(self._subscriptions[subscription].backlog)

    async def publish(self, message: OutgoingMessage) -> str:
        if self._closed:
            raise PublishError("the event bus is closed", topic=message.topic)
        attributes = outgoing_attributes(message)
        key = (message.ordering_key or None) if self.defaults.ordering_enabled else None
        with start_producer_span(
            attributes, f"{message.topic} publish", attributes=publish_span_attributes(message, "memory")
        ):
            self.published.append(message)
            return self._deliver(message.topic, message.data, attributes, key)

    def _deliver(self, topic: str, data: bytes, attributes: dict[str, str], key: str | None) -> str:
        message_id = str(next(self._ids))
        publish_time = datetime.now(UTC)
        for state in self._topics.setdefault(topic, []):
            state.put(_Pending(next(self._seq), data, dict(attributes), message_id, key, publish_time))
        return message_id

    async def subscribe(
        self, topic: str, subscription: str, handler: MessageHandler, **options: Any
    ) -> InMemorySubscription:
        if self._closed:
            raise PublishError("the event bus is closed", topic=topic)
        chosen = self.defaults.with_overrides(options)
        state = self._subscription(check_name("topic", topic), check_name("subscription", subscription), chosen)
        consumer = InMemorySubscription(self, state, handler, chosen)
        self._consumers.add(consumer)
        consumer.start()
        return consumer

    def _subscription(self, topic: str, name: str, options: SubscriptionOptions) -> _SubscriptionState:
        state = self._subscriptions.get(name)
        if state is not None:
            return state  # like Pub/Sub: an existing subscription keeps its configuration
        dead_letter = options.dead_letter_name(topic, name)
        state = _SubscriptionState(name, topic, options, dead_letter)
        self._subscriptions[name] = state
        self._topics.setdefault(topic, []).append(state)
        if dead_letter is not None and dead_letter not in self._subscriptions:
            keep = _SubscriptionState(dead_letter, dead_letter, SubscriptionOptions(max_delivery_attempts=0), None)
            self._subscriptions[dead_letter] = keep
            self._topics.setdefault(dead_letter, []).append(keep)
        return state

    def _nacked(self, state: _SubscriptionState, item: _Pending) -> None:
        limit = state.options.max_delivery_attempts
        if state.dead_letter_topic is not None and limit and item.attempts >= limit:
            attributes = {
                **item.attributes,
                "CloudPubSubDeadLetterSourceDeliveryCount": str(item.attempts),
                "CloudPubSubDeadLetterSourceSubscription": state.name,
                "CloudPubSubDeadLetterSourceTopicPublishTime": item.publish_time.isoformat(),
            }
            self._deliver(state.dead_letter_topic, item.data, attributes, item.ordering_key)
        else:
            item.not_before = time.monotonic() + state.options.backoff(item.attempts)
            state.put(item)
        state.release(item)

    def _forget(self, consumer: InMemorySubscription) -> None:
        self._consumers.discard(consumer)

    async def close(self) -> None:
        """Stop every consumer of this bus (letting their handlers finish); publishing afterwards fails."""
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.stop()


class InMemorySubscription:
    """One consumer of an in-memory subscription; ``stop()`` ends it."""

    def __init__(
        self, bus: InMemoryEventBus, state: _SubscriptionState, handler: MessageHandler, options: SubscriptionOptions
    ) -> None:
        self._bus = bus
        self._state = state
        self._handler = handler
        self._options = options
        self._wake = asyncio.Event()
        self._handlers = RunningHandlers(on_done=self._wake.set)
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._state.name

    def start(self) -> None:
        self._state.waiters.add(self._wake)
        self._task = asyncio.get_running_loop().create_task(self._pull(), name=f"keel-subscription-{self.name}")

    async def _pull(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = time.monotonic()
            due = None
            if self._handlers.count < self._options.flow_control_max_messages and (
                self._handlers.bytes < self._options.flow_control_max_bytes
            ):
                item = self._state.take(now)
                if item is not None:
                    self._handlers.start(self._handle(item), len(item.data))
                    continue
                due = self._state.next_due(now)
            # The timeout only wakes the loop for a backed-off message; every other change sets the event.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if due is None else due - now):
                    await self._wake.wait()

    async def _handle(self, item: _Pending) -> None:
        item.attempts += 1
        message = IncomingMessage(
            data=item.data,
            attributes=dict(item.attributes),
            message_id=item.message_id,
            subscription=self._state.name,
            ordering_key=item.ordering_key,
            delivery_attempt=item.attempts,
            publish_time=item.publish_time,
        )
        try:
            with start_consumer_span(
                message.attributes,
                f"{self._state.topic} process",
                attributes=consume_span_attributes(message, "memory"),
            ):
                await self._handler(message)
        except asyncio.CancelledError:
            self._bus._nacked(self._state, item)
            raise
        except Exception:
            logger.exception("handler of subscription %s failed on message %s", self.name, item.message_id)
            self._bus._nacked(self._state, item)
        else:
            self._state.release(item)

    async def stop(self) -> None:
        """Take no more messages, let the handlers in hand finish (up to ``shutdown_timeout``), then return."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._state.waiters.discard(self._wake)
        await self._handlers.drain(self._options.shutdown_timeout)
        self._bus._forget(self)
