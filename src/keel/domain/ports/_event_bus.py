"""The event-bus port: messages out and in, handlers, subscriptions, :class:`EventBus`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message for a topic: the body as bytes (keel writes JSON) and string attributes.

    ``message_id`` is keel's id for the message (an event's ``event_id``),
    also sent as the ``event_id`` attribute so consumers can deduplicate.
    """

    topic: str
    data: bytes
    message_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: Messages with the same key are delivered in publish order (where the subscription asks for it).
    ordering_key: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message delivered to a subscription's handler."""

    data: bytes
    attributes: Mapping[str, str]
    #: The broker's id for this message (Pub/Sub's ``message_id``).
    message_id: str
    subscription: str
    ordering_key: str | None = None
    #: How many times the broker has delivered it (1 on the first delivery), when the broker says.
    delivery_attempt: int | None = None
    publish_time: datetime | None = None


#: Handles one delivered message; returning acknowledges it, raising makes the broker redeliver it.
MessageHandler = Callable[[IncomingMessage], Awaitable[None]]


class Subscription(Protocol):
    """A running subscription: messages go to its handler until it is stopped."""

    async def stop(self) -> None:
        """Stop pulling, let the messages in hand finish (acked or nacked), then return."""
        ...


class EventBus(Protocol):
    """Publishes messages to topics and runs handlers for subscriptions.

    Implementations: ``keel.event_bus.InMemoryEventBus`` and
    ``keel.event_bus.PubSubEventBus``. Topics and subscriptions are created on
    first use.
    """

    async def publish(self, message: OutgoingMessage) -> str:
        """Publish one message; return the broker's message id. ``PublishError`` when the broker refuses."""
        ...

    async def subscribe(self, topic: str, subscription: str, handler: MessageHandler, **options: Any) -> Subscription:
        """Run ``handler`` for every message of ``subscription`` (created on ``topic`` if absent)."""
        ...

    async def close(self) -> None:
        """Release the bus's clients; publishing afterwards is an error."""
        ...
