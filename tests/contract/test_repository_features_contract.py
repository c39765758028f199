"""Contract: get_or_create, upsert, list_and_count, per-call loader options and row locks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import selectinload

from keel import ConfigurationError, ConflictError, ValidationError
from tests.contract.models import Handle, Item, Owner, Plain, Slot

NewUow = Callable[[], Any]


async def test_get_or_create_creates_once_then_gets(new_uow: NewUow) -> None:
    """The first call inserts (created True) with keel's columns; the next returns that row (created False)."""
    async with new_uow() as uow:
        slot, created = await uow.slots.get_or_create(defaults={"qty": 3}, code="A")
        assert created
        assert slot in uow.seen
        assert (slot.code, slot.qty, slot.version) == ("A", 3, 1)
        assert slot.created_at is not None
        assert slot.updated_at is not None
        again, created_again = await uow.slots.get_or_create(defaults={"qty": 9}, code="A")
        assert again is slot
        assert not created_again
        slot.qty = 4
        await uow.commit()
    async with new_uow() as uow:
        stored, created = await uow.slots.get_or_create(code="A")
    assert not created
    assert (stored.qty, stored.version) == (4, 2)


async def test_get_or_create_rolls_back_with_the_unit_of_work(new_uow: NewUow) -> None:
    """The row is written in the unit of work's transaction: leaving without commit drops it."""
    async with new_uow() as uow:
        await uow.plain.get_or_create(defaults={"qty": 1}, code="P")
    async with new_uow() as uow:
        assert await uow.plain.get_or_none("P") is None


async def test_get_or_create_does_not_resurrect_a_soft_deleted_row(new_uow: NewUow) -> None:
    """A soft-deleted row holding the key under a full unique constraint is a ConflictError, not brought back."""
    async with new_uow() as uow:
        slot, _ = await uow.slots.get_or_create(code="gone")
        await uow.slots.delete(slot)
        await uow.commit()
    async with new_uow() as uow:
        with pytest.raises(ConflictError):
            await uow.slots.get_or_create(code="gone")


async def test_get_or_create_that_collides_on_another_unique_key_is_a_conflict(new_uow: NewUow) -> None:
    """A new row whose primary key (given in defaults) is taken conflicts: ConflictError, nothing written."""
    async with new_uow() as uow:
        taken, _ = await uow.slots.get_or_create(code="first")
        await uow.commit()
    async with new_uow() as uow:
        with pytest.raises(ConflictError):
            await uow.slots.get_or_create(defaults={"id": taken.id}, code="second")


async def test_get_or_create_refuses_a_key_nothing_makes_unique(new_uow: NewUow) -> None:
    """Without a unique rule on the key, racing creators would both insert: ConfigurationError up front."""
    async with new_uow() as uow:
        with pytest.raises(ConfigurationError):
            await uow.items.get_or_create(name="lamp")
        with pytest.raises(ValidationError):
            await uow.slots.get_or_create(defaults={"version": 5}, code="v")
        with pytest.raises(ValidationError):
            await uow.slots.get_or_create(no_such_column="v")
        with pytest.raises(ValidationError):
            await uow.slots.upsert(Slot(code="x"), conflict=["no_such_column"])
        with pytest.raises(ValidationError):
            await uow.slots.upsert(Slot(qty=1), conflict=["code"])  # the conflict column is not set
        with pytest.raises(ConfigurationError):
            await uow.items.upsert(Item(name="lamp"), conflict=["name"])


async def test_upsert_takes_a_new_entity_only(new_uow: NewUow) -> None:
    """An entity already in the unit of work is changed directly, not upserted: ValidationError."""
    async with new_uow() as uow:
        added = uow.slots.add(Slot(code="in", qty=1))
        with pytest.raises(ValidationError):
            await uow.slots.upsert(added, conflict=["code"])


async def test_a_partial_unique_index_over_live_rows_frees_a_deleted_key(new_uow: NewUow) -> None:
    """With a unique index over live rows, get_or_create and upsert make a new row beside a soft-deleted one."""
    async with new_uow() as uow:
        old, _ = await uow.handles.get_or_create(defaults={"owner": "ann"}, name="h")
        await uow.handles.delete(old)
        await uow.commit()
    async with new_uow() as uow:
        new, created = await uow.handles.get_or_create(defaults={"owner": "bob"}, name="h")
        assert created
        assert new.id != old.id
        same = await uow.handles.upsert(Handle(name="h", owner="cy"), conflict=["name"])
        assert same is new
        assert (same.owner, same.version) == ("cy", 2)
        other = await uow.handles.upsert(Handle(name="k", owner="dee"), conflict=["name"])
        assert other.version == 1
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.handles.count(name="h", include_deleted=True) == 2


async def test_upsert_inserts_then_updates_bumping_the_version(new_uow: NewUow) -> None:
    """upsert inserts a missing row, then updates it on the conflict column: version + 1, created_at kept."""
    async with new_uow() as uow:
        first = await uow.slots.upsert(Slot(code="U", qty=1), conflict=["code"])
        assert (first.qty, first.version) == (1, 1)
        assert first in uow.seen
        await uow.commit()
    async with new_uow() as uow:
        second = await uow.slots.upsert(Slot(code="U", qty=7), conflict=["code"])
        assert (second.id, second.qty, second.version) == (first.id, 7, 2)
        assert second.created_at == first.created_at
        assert second.updated_at >= first.updated_at
        await uow.commit()
    async with new_uow() as uow:
        assert (await uow.slots.get(first.id)).qty == 7
        plain = await uow.plain.upsert(Plain(code="K", qty=2))  # conflict defaults to the primary key
        plain_again = await uow.plain.upsert(Plain(code="K", qty=5))
        assert plain_again.qty == 5
        assert plain is plain_again


async def test_upsert_restores_a_soft_deleted_row(new_uow: NewUow) -> None:
    """After upsert the row is what the entity says: live again."""
    async with new_uow() as uow:
        slot = await uow.slots.upsert(Slot(code="R", qty=1), conflict=["code"])
        await uow.slots.delete(slot)
        await uow.commit()
    async with new_uow() as uow:
        back = await uow.slots.upsert(Slot(code="R", qty=2), conflict=["code"])
        assert back.deleted_at is None
        await uow.commit()
    async with new_uow() as uow:
        assert (await uow.slots.list(code="R"))[0].qty == 2


async def test_list_and_count_counts_every_match_and_pages_the_rows(new_uow: NewUow) -> None:
    """The total ignores limit and offset; the rows follow them; past the end the total is still right."""
    async with new_uow() as uow:
        uow.items.add_many(Item(name=f"i{n:02}", rank=n) for n in range(12))
        await uow.commit()
    async with new_uow() as uow:
        rows, total = await uow.items.list_and_count(Item.rank >= 2, order_by="rank", limit=3, offset=2)
        assert ([i.rank for i in rows], total) == ([4, 5, 6], 10)
        assert rows[0] in uow.seen
        assert await uow.items.list_and_count(offset=50) == ([], 12)
        assert await uow.items.list_and_count(name="none") == ([], 0)


async def test_loader_options_are_taken_by_every_read(new_uow: NewUow) -> None:
    """load=[selectinload(...)] is taken by every read (the twin ignores it: it holds whole objects)."""
    async with new_uow() as uow:
        uow.owners.add(Owner(id=1, name="o"))
        await uow.commit()
    load = [selectinload(Owner.tags)]
    async with new_uow() as uow:
        assert (await uow.owners.get(1, load=load)).name == "o"
        assert [o.id for o in await uow.owners.get_many([1], load=load)] == [1]
        assert [o.id for o in await uow.owners.list(load=load)] == [1]
        assert (await uow.owners.paginate(load=load)).total == 1
        assert (await uow.owners.list_and_count(load=load))[1] == 1


async def test_get_for_update_reads_the_row(new_uow: NewUow) -> None:
    """for_update (with nowait or skip_locked) returns the row like get; a no-op lock on SQLite and the twin."""
    async with new_uow() as uow:
        uow.plain.add(Plain(code="H", qty=0))
        await uow.commit()
    async with new_uow() as uow:
        held = await uow.plain.get("H", for_update=True)
        held.qty += 1
        assert (await uow.plain.get_or_none("H", for_update=True, skip_locked=True)) is held
        assert (await uow.plain.get("H", for_update=True, nowait=True)) is held
        await uow.commit()
    async with new_uow() as uow:
        assert (await uow.plain.get("H")).qty == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_fifty_concurrent_get_or_create_calls_make_one_row(new_uow: NewUow) -> None:
    """50 units of work on real connections race for one key: one row, every call returns it, none raises."""

    async def create() -> tuple[int, bool]:
        async with new_uow() as uow:
            slot, created = await uow.slots.get_or_create(defaults={"qty": 1}, code="race")
            await uow.commit()
            return slot.id, created

    results = await asyncio.gather(*(create() for _ in range(50)))
    assert len({slot_id for slot_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    async with new_uow() as uow:
        assert await uow.slots.count(code="race") == 1
