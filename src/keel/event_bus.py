"""``keel.event_bus``: publish messages to topics and run handlers for subscriptions.

.. code-block:: python

    bus = build_event_bus(load_settings())          # KEEL_EVENT_BUS__BACKEND: memory (default) | pubsub
    await bus.publish(OutgoingMessage(topic="line_allocated", data=b"{...}", message_id=str(event.event_id)))
    subscription = await bus.subscribe("line_allocated", "reporting", handler)   # ack on return, nack on raise
    ...
    await subscription.stop()                       # lets the running handlers finish
    await bus.close()

:class:`InMemoryEventBus` is the embedded default and the fake for unit
tests; :class:`PubSubEventBus` runs on Google Cloud Pub/Sub (the ``pubsub``
extra), and on its emulator when ``PUBSUB_EMULATOR_HOST`` is set. Both follow
the :class:`EventBus` port and pass the same contract tests.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keel.domain.ports import EventBus, IncomingMessage, MessageHandler, OutgoingMessage, Subscription
from keel.infrastructure.event_bus import InMemoryEventBus, SubscriptionOptions, build_event_bus

if TYPE_CHECKING:
    from keel.infrastructure.event_bus._pubsub import PubSubEventBus


def __getattr__(name: str) -> Any:
    # PubSubEventBus imports google-cloud-pubsub (an extra): only when asked for.
    if name == "PubSubEventBus":
        from keel.infrastructure.event_bus._pubsub import PubSubEventBus

        return PubSubEventBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EventBus",
    "InMemoryEventBus",
    "IncomingMessage",
    "MessageHandler",
    "OutgoingMessage",
    "PubSubEventBus",
    "Subscription",
    "SubscriptionOptions",
    "build_event_bus",
]
