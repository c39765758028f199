"""The event store's contract, on SQLite, PostgreSQL and the in-memory twin: streams, versions, idempotency, reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import ConcurrencyError, ConfigurationError, ConflictError, DomainEvent, SqlAlchemyUnitOfWork, ValidationError
from keel.event_store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventTypes,
    SqlAlchemyEventStore,
    UnknownEventTypeError,
)
from keel.infrastructure.event_store.tables import events as events_table
from keel.service_layer.context import message_context
from keel.testing import InMemoryEventStore
from tests.conftest import BACKENDS
from tests.contract.event_store_models import Deposited, Opened, Withdrawn

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture(params=["memory", *BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    """The SQL backends and the in-memory twin."""
    return str(request.param)


MakeStore = Callable[..., Any]


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest) -> MakeStore:
    """Builds a store of the backend under test with the given options."""
    if backend == "memory":
        return lambda **options: InMemoryEventStore(**options)
    session_factory = request.getfixturevalue("session_factory")
    return lambda **options: SqlAlchemyEventStore(session_factory, **options)


@pytest.fixture
def store(make_store: MakeStore) -> Any:
    return make_store()


@pytest.fixture
def sql_store(backend: str, request: pytest.FixtureRequest) -> SqlAlchemyEventStore:
    """The SQL store; tests of what only a database does skip the twin."""
    if backend == "memory":
        pytest.skip("a database behaviour: the in-memory twin has no SQL")
    return SqlAlchemyEventStore(request.getfixturevalue("session_factory"))


class EventsUnitOfWork(SqlAlchemyUnitOfWork):
    events: SqlAlchemyEventStore


def deposits(*amounts: int) -> list[DomainEvent]:
    return [Deposited(amount=a) for a in amounts]


async def test_appended_events_read_back_in_order_with_versions_and_positions(store: Any) -> None:
    """A stream reads back its events with versions from 1 and increasing global positions."""
    sent = [Opened(owner="ada"), *deposits(5, 7)]
    recorded = await store.append("account-1", sent, expected_version=NO_STREAM)
    read = await store.read_stream("account-1")
    assert [r.event for r in read] == sent
    assert [r.version for r in read] == [1, 2, 3]
    assert [r.position for r in read] == [r.position for r in recorded]
    assert read[0].position < read[1].position < read[2].position
    assert all(r.stream_id == "account-1" and r.recorded_at is not None for r in read)
    assert await store.stream_version("account-1") == 3


async def test_an_exact_expected_version_must_match(store: Any) -> None:
    """Appending at a version other than the stream's current one is a ConcurrencyError naming both."""
    await store.append("s-1", deposits(1, 2), expected_version=0)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("s-1", deposits(3), expected_version=1)
    assert caught.value.details["actual_version"] == 2
    await store.append("s-1", deposits(3), expected_version=2)
    assert await store.stream_version("s-1") == 3


async def test_stream_states_as_expected_versions(store: Any) -> None:
    """NO_STREAM needs a new stream, STREAM_EXISTS an existing one, ANY accepts both."""
    with pytest.raises(ConcurrencyError):
        await store.append("s-2", deposits(1), expected_version=STREAM_EXISTS)
    await store.append("s-2", deposits(1), expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError):
        await store.append("s-2", deposits(2), expected_version=NO_STREAM)
    await store.append("s-2", deposits(2), expected_version=STREAM_EXISTS)
    await store.append("s-2", deposits(3), expected_version=ANY)
    await store.append("s-3", deposits(4), expected_version=ANY)
    assert [r.version for r in await store.read_stream("s-2")] == [1, 2, 3]
    assert await store.stream_version("s-3") == 1


@pytest.mark.parametrize("expected", [0, NO_STREAM, ANY])
async def test_appending_the_same_events_again_is_idempotent(store: Any, expected: Any) -> None:
    """Re-appending events already recorded at that place returns their records and writes nothing."""
    batch = deposits(1, 2)
    first = await store.append("s-4", batch, expected_version=expected)
    await store.append("s-4", deposits(3), expected_version=2)
    again = await store.append("s-4", batch, expected_version=expected)
    assert [(r.version, r.position) for r in again] == [(r.version, r.position) for r in first]
    assert len(await store.read_all()) == 3


async def test_a_different_event_at_a_taken_position_is_a_conflict(store: Any) -> None:
    """Other events at a taken version, a half-recorded batch: ConcurrencyError; an id used elsewhere: ConflictError."""
    batch = deposits(1, 2)
    await store.append("s-5", batch, expected_version=0)
    with pytest.raises(ConcurrencyError):
        await store.append("s-5", deposits(9), expected_version=0)
    with pytest.raises(ConcurrencyError):
        await store.append("s-5", [batch[0], Deposited(amount=3)], expected_version=0)
    with pytest.raises(ConflictError):
        await store.append("s-6", [batch[1]], expected_version=ANY)
    assert [r.event for r in await store.read_stream("s-5")] == batch


async def test_an_event_id_recorded_in_another_stream_is_a_conflict(store: Any) -> None:
    """An event id is recorded once: reusing it elsewhere is a ConflictError, by append or append_many."""
    (event,) = deposits(1)
    await store.append("id-1", [event], expected_version=NO_STREAM)
    with pytest.raises(ConflictError):
        await store.append("id-2", [event], expected_version=NO_STREAM)
    with pytest.raises(ConflictError):
        await store.append_many([("id-3", deposits(2), NO_STREAM), ("id-4", [event], NO_STREAM)])
    assert [r.stream_id for r in await store.read_all()] == ["id-1"]


async def test_append_many_writes_every_stream_or_none(store: Any) -> None:
    """append_many is one transaction: a conflict on one stream leaves every stream untouched."""
    await store.append("m-1", deposits(1), expected_version=NO_STREAM)
    recorded = await store.append_many([("m-1", deposits(2, 3), 1), ("m-2", deposits(4), NO_STREAM)])
    assert [(r.stream_id, r.version) for r in recorded] == [("m-1", 2), ("m-1", 3), ("m-2", 1)]
    with pytest.raises(ConcurrencyError):
        await store.append_many([("m-3", deposits(5), NO_STREAM), ("m-1", deposits(6), 1)])
    assert await store.stream_version("m-3") == 0
    assert len(await store.read_all()) == 4


async def test_read_stream_windows(store: Any) -> None:
    """from_version/to_version bound the versions; backwards reverses; limit cuts."""
    await store.append("w-1", deposits(*range(1, 11)), expected_version=NO_STREAM)
    assert [r.version for r in await store.read_stream("w-1", from_version=3, to_version=5)] == [3, 4, 5]
    assert [r.version for r in await store.read_stream("w-1", backwards=True, limit=3)] == [10, 9, 8]
    assert [r.version for r in await store.read_stream("w-1", from_version=8, limit=5)] == [8, 9, 10]
    assert await store.read_stream("unknown") == []


async def test_read_all_pages_by_position_and_filters_types(store: Any) -> None:
    """read_all returns events after a position, in order, optionally only some types."""
    await store.append("a-1", [Opened(owner="x"), *deposits(1)], expected_version=NO_STREAM)
    await store.append("a-2", [Opened(owner="y"), Withdrawn(amount=1)], expected_version=NO_STREAM)
    everything = await store.read_all()
    assert [r.stream_id for r in everything] == ["a-1", "a-1", "a-2", "a-2"]
    page = await store.read_all(after=everything[1].position, limit=1)
    assert [r.position for r in page] == [everything[2].position]
    opened = await store.read_all(types=[Opened])
    assert [type(r.event) for r in opened] == [Opened, Opened]
    assert len(await store.read_all(types=["es_test.Withdrawn", Deposited])) == 2


async def test_metadata_is_the_message_context_merged_with_the_callers(store: Any) -> None:
    """Correlation and causation ids come from the message context; the caller's keys are added."""
    with message_context(correlation_id="corr-1", causation_id="cause-1"):
        await store.append("md-1", deposits(1), metadata={"tenant": "t-1"})
    (recorded,) = await store.read_stream("md-1")
    assert recorded.metadata["correlation_id"] == "corr-1"
    assert recorded.metadata["causation_id"] == "cause-1"
    assert recorded.metadata["tenant"] == "t-1"


async def test_snapshots_keep_the_newest(store: Any) -> None:
    """save_snapshot replaces an older snapshot and never a newer one."""
    assert await store.load_snapshot("snap-1") is None
    await store.save_snapshot("snap-1", 5, {"balance": 5})
    await store.save_snapshot("snap-1", 3, {"balance": 3})
    snapshot = await store.load_snapshot("snap-1")
    assert snapshot is not None
    assert (snapshot.version, dict(snapshot.state)) == (5, {"balance": 5})
    await store.save_snapshot("snap-1", 8, {"balance": 8}, schema_version=2)
    snapshot = await store.load_snapshot("snap-1")
    assert snapshot is not None
    assert (snapshot.version, snapshot.schema_version) == (8, 2)


class RenamedV1(DomainEvent):
    message_type: ClassVar[str] = "es_test.Renamed"
    name: str


async def test_upcasters_lift_old_schema_versions(make_store: MakeStore) -> None:
    """An event written at schema version 1 reads as version 2 through its upcaster."""
    old = EventTypes()
    old.register(RenamedV1)
    store = make_store(types=old)
    await store.append("u-1", [RenamedV1(name="Ada Lovelace")])

    class RenamedV2(DomainEvent):
        message_type: ClassVar[str] = "es_test.Renamed"
        schema_version: ClassVar[int] = 2
        first: str
        last: str

    new = EventTypes()
    new.register(RenamedV2)

    @new.upcaster("es_test.Renamed", 1)
    def split(data: dict[str, Any]) -> dict[str, Any]:
        first, last = data.pop("name").split(" ", 1)
        return {**data, "first": first, "last": last}

    store.types = new
    (recorded,) = await store.read_stream("u-1")
    assert isinstance(recorded.event, RenamedV2)
    assert (recorded.event.first, recorded.event.last) == ("Ada", "Lovelace")
    bare = EventTypes()
    bare.register(RenamedV2)
    store.types = bare
    with pytest.raises(ConfigurationError, match="upcaster"):
        await store.read_stream("u-1")


async def test_an_unknown_event_type_is_an_error_naming_it(sql_store: SqlAlchemyEventStore) -> None:
    """A stored type no class claims fails the read with UnknownEventTypeError naming the type."""
    store = sql_store
    recorded = (await store.append("x-1", deposits(1)))[0]
    async with store.session_factory() as session, session.begin():
        row = (await session.execute(select(events_table).where(events_table.c.position == recorded.position))).one()
        values = {**row._mapping, "event_type": "es_test.NobodyKnowsMe", "version": 2}
        del values["position"]
        values["event_id"] = Opened(owner="z").event_id
        values["data"] = '{"amount": 1}'
        await session.execute(insert(events_table).values(values))
    with pytest.raises(UnknownEventTypeError, match=r"es_test\.NobodyKnowsMe") as caught:
        await store.read_stream("x-1")
    assert caught.value.code == "unknown_event_type"


@pytest.mark.parametrize("stream_id", ["", " padded", "tab\there", "x" * 201, 7])
async def test_bad_stream_ids_are_validation_errors(store: Any, stream_id: Any) -> None:
    """A stream id that is empty, too long, padded, has control characters or is no string is refused."""
    with pytest.raises(ValidationError) as caught:
        await store.append(stream_id, deposits(1))
    assert caught.value.errors[0]["type"] == "invalid_stream_id"


async def test_bad_batches_are_validation_errors(make_store: MakeStore) -> None:
    """Empty batches, repeated ids, non-events, oversized payloads and bad versions are refused before writing."""
    store = make_store(max_event_bytes=200)
    cases: list[tuple[Any, str]] = [
        (store.append("b-1", []), "empty_batch"),
        (store.append_many([]), "empty_batch"),
        (store.append("b-1", [Opened(owner="x" * 300)]), "payload_too_large"),
        (store.append("b-1", [Opened(owner="x")], expected_version=-1), "invalid_expected_version"),
        (store.append("b-1", [object()]), "not_an_event"),
        (store.append_many([("b-1", deposits(1), ANY), ("b-1", deposits(2), ANY)]), "duplicate_stream"),
        (store.read_all(after=-1), "invalid_range"),
        (store.read_stream("b-1", limit=0), "invalid_range"),
    ]
    event = Deposited(amount=1)
    cases.append((store.append("b-1", [event, event]), "duplicate_event_id"))
    for call, kind in cases:
        with pytest.raises(ValidationError) as caught:
            await call
        assert caught.value.errors[0]["type"] == kind
    assert await store.read_all() == []


async def test_recorded_events_cannot_be_changed_or_deleted(sql_store: SqlAlchemyEventStore) -> None:
    """The database refuses UPDATE and DELETE on keel_events (a trigger), whatever code tries."""
    store = sql_store
    await store.append("imm-1", deposits(1))
    for statement in (update(events_table).values(version=9), delete(events_table)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with store.session_factory() as session, session.begin():
                await session.execute(statement)
    assert [r.version for r in await store.read_stream("imm-1")] == [1]


async def test_appends_in_a_unit_of_work_commit_and_roll_back_with_it(sql_store: SqlAlchemyEventStore) -> None:
    """A store declared on a unit of work writes in its transaction: rolled back unless committed."""
    session_factory = sql_store.session_factory
    async with EventsUnitOfWork(session_factory) as uow:
        await uow.events.append("uow-1", deposits(1), expected_version=NO_STREAM)
        assert await uow.events.stream_version("uow-1") == 1
    store = SqlAlchemyEventStore(session_factory)
    assert await store.stream_version("uow-1") == 0
    async with EventsUnitOfWork(session_factory) as uow:
        await uow.events.append("uow-1", deposits(2), expected_version=NO_STREAM)
        await uow.commit()
    assert [r.version for r in await store.read_stream("uow-1")] == [1]
    async with EventsUnitOfWork(session_factory) as uow:
        await store.bind(uow).append("uow-1", deposits(3), expected_version=1)
        await uow.commit()
    assert await store.stream_version("uow-1") == 2
