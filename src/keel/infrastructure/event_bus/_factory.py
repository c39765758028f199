"""``build_event_bus(settings)``: the bus ``KEEL_EVENT_BUS__BACKEND`` names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._event_bus_settings import EventBusSettings
from keel.cross_cutting.error import ConfigurationError
from keel.domain.ports import EventBus
from keel.infrastructure.event_bus._memory import InMemoryEventBus

if TYPE_CHECKING:
    from keel.config import KeelSettings


def build_event_bus(settings: KeelSettings | EventBusSettings) -> EventBus:
    """An :class:`InMemoryEventBus` (``memory``, the default) or a ``PubSubEventBus`` (``pubsub``).

    google-cloud-pubsub is imported only for ``pubsub``, so the embedded
    default needs nothing beyond keel itself.
    """
    section = settings if isinstance(settings, EventBusSettings) else settings.event_bus
    if section.backend == "memory":
        return InMemoryEventBus.from_settings(section)
    try:
        from keel.infrastructure.event_bus._pubsub import PubSubEventBus
    except ImportError as exc:
        raise ConfigurationError(
            "KEEL_EVENT_BUS__BACKEND=pubsub needs google-cloud-pubsub: pip install 'keel-framework[pubsub]'",
            variables=["KEEL_EVENT_BUS__BACKEND"],
        ) from exc
    return PubSubEventBus(section)
