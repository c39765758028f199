"""``KEEL_EVENT_BUS__*``: defaults, the ranges Pub/Sub accepts, and the bus build_event_bus picks."""

from __future__ import annotations

import pytest

from keel import ConfigurationError
from keel.config import EventBusSettings, KeelSettings
from keel.event_bus import InMemoryEventBus, SubscriptionOptions, build_event_bus


def test_the_default_bus_is_in_memory_with_pubsubs_own_defaults() -> None:
    """No settings: an InMemoryEventBus, 5 attempts before dead-lettering, 10 s to 600 s backoff, no ordering."""
    bus = build_event_bus(KeelSettings(_env_file=None))
    assert isinstance(bus, InMemoryEventBus)
    assert bus.defaults == SubscriptionOptions()
    assert bus.defaults.max_delivery_attempts == 5
    assert (bus.defaults.retry_min_backoff, bus.defaults.retry_max_backoff) == (10.0, 600.0)
    assert bus.defaults.ordering_enabled is False


def test_event_bus_settings_come_from_keel_event_bus_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_EVENT_BUS__* variables fill settings.event_bus."""
    monkeypatch.setenv("KEEL_EVENT_BUS__BACKEND", "pubsub")
    monkeypatch.setenv("KEEL_EVENT_BUS__PROJECT_ID", "shop")
    monkeypatch.setenv("KEEL_EVENT_BUS__MAX_DELIVERY_ATTEMPTS", "7")
    monkeypatch.setenv("KEEL_EVENT_BUS__ORDERING_ENABLED", "true")
    section = KeelSettings(_env_file=None).event_bus
    assert (section.backend, section.project_id, section.max_delivery_attempts) == ("pubsub", "shop", 7)
    assert section.ordering_enabled is True


def test_the_pubsub_backend_without_a_project_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """backend=pubsub and no project id: ConfigurationError naming the section."""
    monkeypatch.setenv("KEEL_EVENT_BUS__BACKEND", "pubsub")
    with pytest.raises(ConfigurationError, match="KEEL_EVENT_BUS__PROJECT_ID"):
        KeelSettings(_env_file=None)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"max_delivery_attempts": 3}, "MAX_DELIVERY_ATTEMPTS"),
        ({"max_delivery_attempts": 101}, "MAX_DELIVERY_ATTEMPTS"),
        ({"ack_deadline": 5}, "ACK_DEADLINE"),
        ({"retry_max_backoff": 601}, "RETRY_MAX_BACKOFF"),
        ({"dead_letter_topic": "{queue}-dead"}, "DEAD_LETTER_TOPIC"),
        ({"retry_min_backoff": 20, "retry_max_backoff": 10}, "KEEL_EVENT_BUS"),
    ],
)
def test_values_pubsub_would_refuse_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, object], variable: str
) -> None:
    """Out-of-range attempts, deadlines, backoffs and bad templates are ConfigurationErrors naming the variable."""
    for name, value in values.items():
        monkeypatch.setenv(f"KEEL_EVENT_BUS__{name.upper()}", str(value))
    with pytest.raises(ConfigurationError, match=variable):
        KeelSettings(_env_file=None)


def test_no_dead_lettering_is_max_delivery_attempts_zero() -> None:
    """0 turns dead-lettering off; the subscription then has no dead-letter topic."""
    options = SubscriptionOptions.from_settings(EventBusSettings(max_delivery_attempts=0))
    assert options.dead_letter_name("orders", "billing") is None


def test_build_event_bus_takes_the_section_alone_too() -> None:
    """An EventBusSettings works as well as the whole KeelSettings."""
    bus = build_event_bus(EventBusSettings(retry_min_backoff=0, retry_max_backoff=0))
    assert isinstance(bus, InMemoryEventBus)
    assert bus.defaults.retry_max_backoff == 0
