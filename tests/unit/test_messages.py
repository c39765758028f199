"""Commands and domain events: frozen, validated into keel errors, identified and timestamped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pydantic
import pytest

from keel import Command, DomainEvent, ValidationError
from keel.domain import Message


class Allocate(Command):
    sku: str
    qty: int = pydantic.Field(gt=0)


class Allocated(DomainEvent):
    sku: str
    qty: int


class Renamed(DomainEvent):
    message_type: ClassVar[str] = "catalog.ProductRenamed"
    sku: str


class RenamedAgain(Renamed):
    """A subclass names itself: the parent's explicit type is not inherited by accident."""


def test_commands_and_events_are_frozen() -> None:
    """Assigning to a field of a built message fails and leaves it unchanged."""
    command = Allocate(sku="LAMP", qty=1)
    event = Allocated(sku="LAMP", qty=1)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        command.qty = 2  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        event.sku = "DESK"  # type: ignore[misc]
    assert (command.qty, event.sku) == (1, "LAMP")
    assert hash(command) == hash(Allocate(sku="LAMP", qty=1))


def test_bad_input_is_a_keel_validation_error_with_field_errors() -> None:
    """Wrong types, missing and unknown fields become one keel ValidationError listing each field."""
    with pytest.raises(ValidationError) as caught:
        Allocate(sku=None, qty="lots", colour="red")  # type: ignore[call-arg]  # the bad input under test
    error = caught.value
    assert error.code == "validation_error"
    assert {tuple(e["loc"]): e["type"] for e in error.errors} == {
        ("sku",): "string_type",
        ("qty",): "int_parsing",
        ("colour",): "extra_forbidden",
    }
    assert str(error) == "[validation_error] invalid Allocate: sku, qty, colour"
    assert all(set(e) == {"loc", "msg", "type"} for e in error.errors), "input values are never echoed"
    with pytest.raises(ValidationError) as missing:
        Allocate()  # type: ignore[call-arg]
    assert [e["type"] for e in missing.value.errors] == ["missing", "missing"]


def test_constraints_declared_on_fields_are_enforced() -> None:
    """pydantic constraints apply: qty must be positive."""
    with pytest.raises(ValidationError) as caught:
        Allocate(sku="LAMP", qty=0)
    assert caught.value.errors == [{"loc": ["qty"], "msg": "Input should be greater than 0", "type": "greater_than"}]


def test_model_validate_and_model_validate_json_raise_keel_errors_too() -> None:
    """Messages built from dicts or JSON (handlers, the outbox, Pub/Sub) fail the same way."""
    with pytest.raises(ValidationError, match="invalid Allocate: qty"):
        Allocate.model_validate({"sku": "LAMP", "qty": "x"})
    with pytest.raises(ValidationError, match="invalid Allocated: qty"):
        Allocated.model_validate_json('{"sku": "LAMP", "qty": "x"}')


def test_events_get_a_unique_id_and_an_aware_utc_time() -> None:
    """event_id is a fresh UUID per event; occurred_at is now, timezone-aware UTC."""
    before = datetime.now(UTC)
    first, second = Allocated(sku="LAMP", qty=1), Allocated(sku="LAMP", qty=1)
    after = datetime.now(UTC)
    assert isinstance(first.event_id, uuid.UUID)
    assert first.event_id != second.event_id
    assert first.occurred_at.tzinfo is not None
    assert first.occurred_at.utcoffset() == timedelta(0)
    assert before <= first.occurred_at <= after
    assert first != second, "two occurrences of the same fact are different events"


def test_events_survive_a_json_round_trip() -> None:
    """Serialised and parsed back, an event is equal to itself: id and time included."""
    event = Allocated(sku="LAMP", qty=3)
    assert Allocated.model_validate_json(event.model_dump_json()) == event


def test_message_type_is_the_class_name_unless_declared() -> None:
    """message_type defaults to the class name, stays as declared, and is never inherited silently."""
    assert Allocate.message_type == "Allocate"
    assert Allocated.message_type == "Allocated"
    assert Renamed.message_type == "catalog.ProductRenamed"
    assert RenamedAgain.message_type == "RenamedAgain"
    assert Renamed(sku="x").message_type == "catalog.ProductRenamed"
    assert "message_type" not in Renamed(sku="x").model_dump()


def test_commands_and_events_are_messages_but_not_each_other() -> None:
    """Both share the Message base; a command is not an event."""
    assert issubclass(Allocate, Message)
    assert issubclass(Allocated, Message)
    assert not issubclass(Allocate, DomainEvent)
    assert "event_id" not in Allocate.model_fields
