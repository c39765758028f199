"""Event type names, aliases and upcasters: the registry the event store decodes with."""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

import pytest

from keel import ConfigurationError, DomainEvent
from keel.event_store import EventSourcedAggregate, EventSourcedRepository, EventTypes, UnknownEventTypeError
from keel.testing import InMemoryEventStore


class Named(DomainEvent):
    message_type: ClassVar[str] = "types_test.Named"
    name: str


class Twin(DomainEvent):
    message_type: ClassVar[str] = "types_test.Twin"


class OtherTwin(DomainEvent):
    message_type: ClassVar[str] = "types_test.Twin"


class Versioned(DomainEvent):
    message_type: ClassVar[str] = "types_test.Versioned"
    schema_version: ClassVar[int] = 3
    value: int


def encoded(event: DomainEvent) -> str:
    return event.model_dump_json()


def test_a_registered_alias_reads_events_stored_under_an_old_name() -> None:
    """register(cls, aliases=...) maps a renamed class's old name to it."""
    types = EventTypes()
    types.register(Named, aliases=("types_test.OldName",))
    event = Named(name="x")
    assert types.decode("types_test.OldName", 1, encoded(event), event.event_id) == event


def test_one_name_for_two_classes_is_refused() -> None:
    """Registering a second class under a taken name, or resolving a name two classes claim, is an error."""
    types = EventTypes()
    types.register(Twin)
    with pytest.raises(ConfigurationError, match="already registered"):
        types.register(OtherTwin)
    with pytest.raises(ConfigurationError, match="claimed by several classes"):
        EventTypes().resolve("types_test.Twin")
    with pytest.raises(ConfigurationError, match="aliases name one class"):
        types.register(Named, Twin, aliases=("x",))


def test_an_unknown_name_is_an_error_naming_it() -> None:
    """A name no class carries is UnknownEventTypeError with the name in its message and details."""
    with pytest.raises(UnknownEventTypeError, match=r"types_test\.Nobody") as caught:
        EventTypes().resolve("types_test.Nobody")
    assert caught.value.details["event_type"] == "types_test.Nobody"


def test_upcasters_run_one_version_at_a_time() -> None:
    """Data of version 1 passes through the upcasters of 1 and 2 to reach version 3."""
    types = EventTypes()
    types.add_upcaster(
        "types_test.Versioned", 1, lambda data: {k: v for k, v in data.items() if k != "v"} | {"value": data["v"]}
    )
    types.add_upcaster("types_test.Versioned", 2, lambda data: {**data, "value": data["value"] * 10})
    event_id = uuid.uuid4()
    stored = json.dumps({"event_id": str(event_id), "occurred_at": "2026-01-01T00:00:00Z", "v": 4})
    decoded = types.decode("types_test.Versioned", 1, stored, event_id)
    assert isinstance(decoded, Versioned)
    assert decoded.value == 40
    assert decoded.event_id == event_id


def test_data_newer_than_the_code_and_duplicate_upcasters_are_refused() -> None:
    """A schema version above the class's is an error, as is a second upcaster for one step."""
    types = EventTypes()
    event = Versioned(value=1)
    with pytest.raises(ConfigurationError, match="older than the data"):
        types.decode("types_test.Versioned", 4, json.loads(encoded(event)), event.event_id)

    def step(data: dict[str, Any]) -> dict[str, Any]:
        return data

    types.add_upcaster("types_test.Versioned", 1, step)
    types.add_upcaster("types_test.Versioned", 1, step)  # the same function again is harmless
    with pytest.raises(ConfigurationError, match="already registered"):
        types.add_upcaster("types_test.Versioned", 1, lambda data: data)


class Bare(EventSourcedAggregate):
    pass


async def test_an_aggregate_must_implement_apply_and_a_repository_must_name_its_aggregate() -> None:
    """record() on an aggregate without apply() says what is missing; so does a repository without a type."""
    with pytest.raises(NotImplementedError, match="apply"):
        Bare("b-1").record(Named(name="x"))
    with pytest.raises(ConfigurationError, match="EventSourcedAggregate"):
        EventSourcedRepository(InMemoryEventStore())
    assert Bare.stream_id_for("b-1") == "Bare-b-1"


def test_an_event_sourced_repository_on_an_in_memory_unit_of_work_says_what_to_use() -> None:
    """Declared on a unit of work without a database session, the repository explains the alternative."""
    from keel.testing import InMemoryStore, InMemoryUnitOfWork

    with pytest.raises(ConfigurationError, match="InMemoryEventStore"):
        EventSourcedRepository.for_unit_of_work(InMemoryUnitOfWork(InMemoryStore()), Bare)  # type: ignore[arg-type]
