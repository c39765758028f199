"""Outbox routing: event type -> route, payload encoding, and the relay's backoff arithmetic."""

from __future__ import annotations

import json

import pydantic
import pytest

from keel import ConfigurationError, DomainEvent
from keel.config import OutboxSettings
from keel.outbox import OutboxRelay, OutboxRouting, Route
from keel.outbox import outbox as outbox_table


class Shipped(DomainEvent):
    order: str
    lines: int


class Renamed(DomainEvent):
    message_type = "catalog.Renamed"
    sku: str


class Body(pydantic.BaseModel):
    order: str


def test_routes_are_found_by_class_or_stable_name() -> None:
    """A class key and a `message_type` string key both route; unnamed types do not."""
    routing = OutboxRouting({Shipped: "shipments", "catalog.Renamed": Route("catalog")})
    shipped = routing.route_for(Shipped(order="o1", lines=2))
    assert shipped is not None
    assert shipped.topic == "shipments"
    renamed = routing.route_for(Renamed(sku="s"))
    assert renamed is not None
    assert renamed.topic == "catalog"
    assert OutboxRouting({Shipped: "x"}).route_for(Renamed(sku="s")) is None
    assert sorted(routing) == ["Shipped", "catalog.Renamed"]
    assert "shipments" in repr(routing)
    assert not OutboxRouting()


def test_wired_routes_win_over_settings_routes() -> None:
    """`merged` keeps its own route for a type both name, and adds the fallback's others."""
    wired = OutboxRouting({Shipped: Route("wired")})
    merged = wired.merged(OutboxRouting.from_settings({"Shipped": "settings", "catalog.Renamed": "catalog"}))
    assert merged.route_for(Shipped(order="o", lines=1)).topic == "wired"  # type: ignore[union-attr]
    assert merged.route_for(Renamed(sku="s")).topic == "catalog"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, None),
        (lambda e: {"order": e.order}, '{"order":"o1"}'),
        (lambda e: Body(order=e.order), '{"order":"o1"}'),
        (lambda e: f'"{e.order}"', '"o1"'),
        (lambda e: b'{"raw":true}', '{"raw":true}'),
    ],
)
def test_the_body_is_the_events_json_or_the_payload_functions(payload: object, expected: str | None) -> None:
    """Without a payload function the body is model_dump_json(); dicts, models, str and bytes are accepted."""
    event = Shipped(order="o1", lines=2)
    body = Route("t", payload=payload).body(event)  # type: ignore[arg-type]
    if expected is None:
        assert json.loads(body)["event_id"] == str(event.event_id)
    else:
        assert body == expected


def test_ordering_keys_are_strings_or_none() -> None:
    """The key function's value is turned into text; None (or no function) means no order."""
    event = Shipped(order="o1", lines=2)
    assert Route("t", ordering_key=lambda e: e.lines).key(event) == "2"
    assert Route("t", ordering_key=lambda e: None).key(event) is None
    assert Route("t").key(event) is None


@pytest.mark.parametrize("topic", ["", "x" * 256])
def test_a_route_needs_a_sensible_topic(topic: str) -> None:
    """An empty or overlong topic is refused when the route is declared."""
    with pytest.raises(ConfigurationError, match="topic"):
        Route(topic)


def test_backoff_doubles_up_to_its_cap() -> None:
    """The wait after n failures is initial * 2**(n-1), capped at the maximum (no jitter here)."""
    relay = OutboxRelay(
        object(),  # type: ignore[arg-type]
        object(),  # type: ignore[arg-type]
        settings=OutboxSettings(backoff_initial=1, backoff_max=5, jitter=0),
    )
    assert [relay.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_the_outbox_table_is_on_keels_metadata() -> None:
    """`keel_outbox` is registered on keel_metadata with its claim indexes."""
    from keel.orm import keel_metadata

    assert keel_metadata.tables["keel_outbox"] is outbox_table
    assert {index.name for index in outbox_table.indexes} == {
        "ix_keel_outbox_status_position",
        "ix_keel_outbox_ordering_key_position",
    }
