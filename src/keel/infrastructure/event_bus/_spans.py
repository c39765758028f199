"""The attributes of the buses' publish and consume spans (OpenTelemetry's messaging conventions).

Both buses open a PRODUCER span around a publish (its context replaces the
message's ``traceparent``) and a CONSUMER span around each handler call (it
continues the trace the message's ``traceparent`` carries), so a trace runs
from the request that committed an event to the consumer that handles it.
"""

from __future__ import annotations

from keel.cross_cutting.telemetry._spans import AttributeValue
from keel.domain.ports import IncomingMessage, OutgoingMessage


def publish_span_attributes(message: OutgoingMessage, system: str) -> dict[str, AttributeValue]:
    """The PRODUCER span's attributes for ``message``."""
    return {
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.destination.name": message.topic,
        "messaging.message.id": message.message_id,
        "messaging.gcp_pubsub.message.ordering_key": message.ordering_key,
        "keel.event_type": message.attributes.get("event_type"),
    }


def consume_span_attributes(message: IncomingMessage, system: str) -> dict[str, AttributeValue]:
    """The CONSUMER span's attributes for ``message``."""
    return {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.destination.subscription.name": message.subscription,
        "messaging.message.id": message.message_id,
        "messaging.gcp_pubsub.message.delivery_attempt": message.delivery_attempt,
        "keel.event_id": message.attributes.get("event_id"),
        "keel.event_type": message.attributes.get("event_type"),
    }
