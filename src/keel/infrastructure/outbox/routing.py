"""Which events leave the service: event type -> topic, ordering key and body.

Declared in the service's wiring (the container's ``outbox_routes``) or in
``KEEL_OUTBOX__ROUTES``, never on the event class, so the domain module knows
nothing of topics::

    routes = OutboxRouting({
        Allocated: Route("line_allocated", ordering_key=lambda e: e.sku,
                         payload=lambda e: {"orderid": e.orderid, "sku": e.sku, ...}),
        "BatchCreated": Route("batches"),     # by the event's stable name (message_type)
    })
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from keel.cross_cutting.error import ConfigurationError
from keel.domain.messages import DomainEvent

#: What a payload function may return: the body as bytes or text, or something JSON-serialisable.
Payload = bytes | str | Mapping[str, Any] | pydantic.BaseModel


@dataclass(frozen=True, slots=True)
class Route:
    """Where one event type goes.

    ``ordering_key(event)`` names the sequence the event belongs to (the relay
    publishes the events of one key in commit order); ``payload(event)`` gives
    the message body, by default the event's own JSON (``model_dump_json()``).
    """

    topic: str
    ordering_key: Callable[[Any], str | None] | None = None
    payload: Callable[[Any], Payload] | None = None

    def __post_init__(self) -> None:
        if not self.topic or len(self.topic) > 255:
            raise ConfigurationError("an outbox route needs a topic of 1 to 255 characters", topic=self.topic)

    def body(self, event: DomainEvent) -> str:
        """The message body of ``event`` as JSON text."""
        if self.payload is None:
            return event.model_dump_json()
        return encode_payload(self.payload(event))

    def key(self, event: DomainEvent) -> str | None:
        """The ordering key of ``event``, or None (no order kept against other messages)."""
        if self.ordering_key is None:
            return None
        key = self.ordering_key(event)
        return None if key is None else str(key)


class OutboxRouting:
    """The routes of a service, looked up by the event's stable type name (``message_type``).

    Keys are event classes or their ``message_type`` strings. An event whose
    type has no route stays inside the service (no outbox row).
    """

    def __init__(self, routes: Mapping[type[DomainEvent] | str, Route | str] | None = None) -> None:
        self._routes: dict[str, Route] = {}
        for event_type, route in (routes or {}).items():
            name = event_type if isinstance(event_type, str) else event_type.message_type
            self._routes[name] = route if isinstance(route, Route) else Route(route)

    @classmethod
    def from_settings(cls, routes: Mapping[str, str]) -> OutboxRouting:
        """Routes given as ``event type -> topic`` (``KEEL_OUTBOX__ROUTES``)."""
        return cls({name: Route(topic) for name, topic in routes.items()})

    def merged(self, fallback: OutboxRouting) -> OutboxRouting:
        """These routes, plus ``fallback``'s for the event types these do not name."""
        combined = OutboxRouting()
        combined._routes = {**fallback._routes, **self._routes}
        return combined

    def route_for(self, event: DomainEvent) -> Route | None:
        """The route of ``event``'s type, or None when it does not leave the service."""
        return self._routes.get(type(event).message_type)

    def __bool__(self) -> bool:
        return bool(self._routes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{name!r}: {route.topic!r}" for name, route in self._routes.items())
        return f"OutboxRouting({{{pairs}}})"


def encode_payload(value: Payload) -> str:
    """A payload function's result as JSON text."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    return json.dumps(value, separators=(",", ":"), default=str)
