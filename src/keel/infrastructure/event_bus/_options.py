"""What both event buses check and configure the same way: names, messages, subscription options.

Pub/Sub's own limits are applied to the in-memory bus too, so a topic name or
an attribute that Pub/Sub would refuse fails in a unit test, not in
production.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Self

from keel._event_bus_settings import EventBusSettings
from keel.cross_cutting.error import ConfigurationError, PublishError
from keel.domain.ports import OutgoingMessage

#: Pub/Sub's rule for topic and subscription ids.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
MAX_DATA_BYTES = 10_000_000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
#: The attribute that carries keel's message id, so consumers can deduplicate.
EVENT_ID = "event_id"
#: Names the Python client's ``publish(topic, data, ordering_key, retry, timeout, **attributes)`` would
#: take for its own arguments, so they cannot be attribute names on either bus.
RESERVED_ATTRIBUTES = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})


def check_name(kind: str, name: str) -> str:
    """``name`` if Pub/Sub accepts it as a topic or subscription id; ``ConfigurationError`` otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.lower().startswith("goog"):
        raise ConfigurationError(
            f"invalid {kind} name {name!r}: 3 to 255 letters, digits or - _ . ~ + %, starting with a letter "
            "and not with 'goog'",
            **{kind: name},
        )
    return name


def outgoing_attributes(message: OutgoingMessage) -> dict[str, str]:
    """The attributes to send: the message's own plus ``event_id``; ``PublishError`` past Pub/Sub's limits."""
    check_name("topic", message.topic)
    attributes = {EVENT_ID: message.message_id, **message.attributes}
    problem = _problem(message, attributes)
    if problem:
        raise PublishError(f"message {message.message_id!r} refused: {problem}", topic=message.topic)
    return attributes


def _problem(message: OutgoingMessage, attributes: dict[str, str]) -> str | None:
    if not isinstance(message.data, bytes):
        return "data must be bytes"
    if len(message.data) > MAX_DATA_BYTES:
        return f"data is {len(message.data)} bytes, more than {MAX_DATA_BYTES}"
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes, more than {MAX_ATTRIBUTES}"
    for key, value in attributes.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return "attribute keys and values must be strings"
        if not key or key.lower().startswith("goog") or len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            return f"attribute key {key[:40]!r} is empty, reserved (goog...) or over {MAX_ATTRIBUTE_KEY_BYTES} bytes"
        if key in RESERVED_ATTRIBUTES:
            return f"attribute key {key!r} is reserved by the Pub/Sub client ({', '.join(sorted(RESERVED_ATTRIBUTES))})"
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            return f"attribute {key!r} is over {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
    return None


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """How a subscription is created and pulled; ``subscribe(..., **options)`` overrides any field.

    The first five apply when the subscription is created (an existing
    subscription keeps its own configuration, as on Pub/Sub); the flow-control
    limits and ``shutdown_timeout`` apply to this consumer.
    """

    ack_deadline: int = 60
    retry_min_backoff: float = 10.0
    retry_max_backoff: float = 600.0
    #: 0: no dead-lettering. Pub/Sub accepts 5 to 100; the in-memory bus any positive number.
    max_delivery_attempts: int = 5
    #: A name, or a template with ``{subscription}`` and ``{topic}``.
    dead_letter_topic: str = "{subscription}-dead-letter"
    ordering_enabled: bool = False
    flow_control_max_messages: int = 1000
    flow_control_max_bytes: int = 100 * 1024 * 1024
    shutdown_timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: EventBusSettings) -> Self:
        return cls(**{field.name: getattr(settings, field.name) for field in dataclasses.fields(cls)})

    def with_overrides(self, options: dict[str, Any]) -> Self:
        """These options with ``options`` applied; ``ConfigurationError`` names an unknown or bad one."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown subscription option(s) {unknown}; known: {sorted(known)}", options=unknown
            )
        chosen = dataclasses.replace(self, **options)
        chosen.check()
        return chosen

    def check(self) -> None:
        if self.max_delivery_attempts < 0:
            raise ConfigurationError("max_delivery_attempts must be 0 (no dead-lettering) or positive")
        if not 0 <= self.retry_min_backoff <= self.retry_max_backoff:
            raise ConfigurationError("retry backoffs must satisfy 0 <= retry_min_backoff <= retry_max_backoff")
        if self.flow_control_max_messages < 1 or self.flow_control_max_bytes < 1 or self.shutdown_timeout <= 0:
            raise ConfigurationError("flow-control limits and shutdown_timeout must be positive")

    def dead_letter_name(self, topic: str, subscription: str) -> str | None:
        """The dead-letter topic of ``subscription`` (None without dead-lettering)."""
        if not self.max_delivery_attempts:
            return None
        try:
            name = self.dead_letter_topic.format(topic=topic, subscription=subscription)
        except (KeyError, IndexError, ValueError):
            raise ConfigurationError(
                f"dead_letter_topic {self.dead_letter_topic!r} is not a template of {{subscription}} and {{topic}}"
            ) from None
        return check_name("topic", name)

    def backoff(self, attempt: int) -> float:
        """Seconds before redelivering a message nacked on delivery ``attempt`` (exponential, capped)."""
        return min(self.retry_min_backoff * 2.0 ** max(attempt - 1, 0), self.retry_max_backoff)
