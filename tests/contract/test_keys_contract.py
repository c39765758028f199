"""Contract: UUIDv7 and BigInt identity keys, and the portable JSON column, alike on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from keel.orm import uuid7
from keel.testing import InMemoryStore, in_memory_unit_of_work
from tests.contract.keys_models import KeysUnitOfWork, Reading, Ticket

NewUow = Callable[[], Any]
InMemoryKeysUnitOfWork = in_memory_unit_of_work(KeysUnitOfWork)


@pytest.fixture
def new_uow(backend: str, request: pytest.FixtureRequest) -> NewUow:
    if backend == "memory":
        store = InMemoryStore()
        return lambda: InMemoryKeysUnitOfWork(store)
    session_factory = request.getfixturevalue("session_factory")
    return lambda: KeysUnitOfWork(session_factory)


def test_uuid7_is_version_7_and_increases_within_a_millisecond() -> None:
    """Ids made back to back are version 7 and strictly increasing (sortable by creation)."""
    made = [uuid7() for _ in range(2_000)]
    assert {u.version for u in made} == {7}
    assert made == sorted(made)
    assert len(set(made)) == len(made)


async def test_uuid_keys_are_assigned_at_flush_and_follow_creation_order(new_uow: NewUow) -> None:
    """Each ticket gets a v7 id on commit; ordering by id is the order they were added."""
    async with new_uow() as uow:
        tickets = [uow.tickets.add(Ticket(title=f"t{n}")) for n in range(30)]
        await uow.commit()
    ids = [ticket.id for ticket in tickets]
    assert all(isinstance(i, uuid.UUID) and i.version == 7 for i in ids)
    async with new_uow() as uow:
        listed = await uow.tickets.list(order_by="id")
        first = await uow.tickets.paginate_by_cursor(size=10, order_by="id")
        second = await uow.tickets.paginate_by_cursor(size=10, order_by="id", cursor=first.next_cursor)
        fetched = await uow.tickets.get(str(ids[3]))
    assert [t.title for t in listed] == [f"t{n}" for n in range(30)]
    assert [t.title for t in first.items + second.items] == [f"t{n}" for n in range(20)]
    assert fetched.title == "t3"


async def test_an_id_given_by_the_caller_is_kept(new_uow: NewUow) -> None:
    """Passing id=uuid7() makes the key known before the flush, and it is the one stored."""
    chosen = uuid7()
    async with new_uow() as uow:
        uow.tickets.add(Ticket(id=chosen, title="known"))
        await uow.commit()
    async with new_uow() as uow:
        assert (await uow.tickets.get(chosen)).title == "known"


async def test_bigint_identity_keys_are_assigned_by_the_database_in_insert_order(new_uow: NewUow) -> None:
    """Readings get increasing integer ids; values past 2**31 are accepted as keys."""
    async with new_uow() as uow:
        readings = uow.readings.add_many(Reading(sensor=f"s{n}") for n in range(5))
        big = uow.readings.add(Reading(id=2**40, sensor="big"))
        await uow.commit()
    ids = [reading.id for reading in readings]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    async with new_uow() as uow:
        assert (await uow.readings.get(2**40)).sensor == "big"
        assert big.id == 2**40


@pytest.mark.parametrize(
    "value",
    [{"b": 1, "a": [1, 2, {"c": None}]}, ["x", 1.5, True], "text", 42, {"ünï": "cødé"}],
    ids=["object", "array", "string", "number", "unicode"],
)
async def test_json_values_round_trip(new_uow: NewUow, value: Any) -> None:
    """Objects, arrays and scalars come back equal to what was stored."""
    async with new_uow() as uow:
        ticket = uow.tickets.add(Ticket(title="json", labels=value))
        await uow.commit()
    async with new_uow() as uow:
        assert (await uow.tickets.get(ticket.id)).labels == value


async def test_json_none_is_sql_null_everywhere(new_uow: NewUow) -> None:
    """None is stored as SQL NULL, so an IS NULL filter finds it on every backend."""
    async with new_uow() as uow:
        uow.tickets.add(Ticket(title="empty", labels=None))
        uow.tickets.add(Ticket(title="full", labels={"k": "v"}))
        await uow.commit()
    async with new_uow() as uow:
        empty = await uow.tickets.list(Ticket.labels.is_(None))
    assert [t.title for t in empty] == ["empty"]
