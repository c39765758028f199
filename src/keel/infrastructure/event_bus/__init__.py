"""The event bus implementations: in memory, and on Google Cloud Pub/Sub.

The public path is :mod:`keel.event_bus`. ``PubSubEventBus`` is not imported
here, so importing this package needs no google-cloud-pubsub; it lives in
``keel.infrastructure.event_bus._pubsub``.
"""

from __future__ import annotations

from keel.infrastructure.event_bus._factory import build_event_bus as build_event_bus
from keel.infrastructure.event_bus._memory import InMemoryEventBus as InMemoryEventBus
from keel.infrastructure.event_bus._memory import InMemorySubscription as InMemorySubscription
from keel.infrastructure.event_bus._options import SubscriptionOptions as SubscriptionOptions
