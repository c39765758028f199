"""Contract: update_many/delete_many never let a stale copy past the version check.

Each test holds two units of work open at once: ours loads a row, another
one changes it and commits, then ours runs a set-based write and saves its
(now stale) copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from keel import ConcurrencyError
from tests.contract.models import Item, Owner
from tests.support.seeding import seed

NewUow = Callable[[], Any]


@pytest.fixture
async def stock_id(new_uow: NewUow) -> int:
    """One item with a stock (``rank``) of 10."""
    [item] = await seed(new_uow(), items=[Item(name="widget", rank=10)])
    return int(item.id)


async def _sell(new_uow: NewUow, item_id: int, qty: int) -> None:
    async with new_uow() as other:
        item = await other.items.get(item_id)
        item.rank -= qty
        await other.commit()


async def test_stale_copy_is_refused_after_an_update_many_the_database_did_not_match(
    new_uow: NewUow, stock_id: int
) -> None:
    """A set-based update that matches the stale copy but not the row leaves the copy stale: commit raises.

    Stock 10; another writer sells 5 while we hold the item; our copy sells 1:
    the commit must fail, not store 9.
    """
    loaded, sold = asyncio.Event(), asyncio.Event()

    async def ours() -> None:
        async with new_uow() as uow:
            held = await uow.items.get(stock_id)
            loaded.set()
            await sold.wait()
            assert await uow.items.update_many(Item.rank >= 8, values={"category": "plenty"}) == 0
            held.rank -= 1
            with pytest.raises(ConcurrencyError):
                await uow.commit()

    async def theirs() -> None:
        await loaded.wait()
        await _sell(new_uow, stock_id, 5)
        sold.set()

    await asyncio.wait_for(asyncio.gather(ours(), theirs()), timeout=30)
    async with new_uow() as uow:
        item = await uow.items.get(stock_id)
    assert (item.rank, item.category, item.version) == (5, None, 2)


async def test_stale_copy_is_refused_after_an_update_many_that_matched_its_row(new_uow: NewUow, stock_id: int) -> None:
    """A set-based update of the row itself does not refresh the stale copy's version: commit raises."""
    async with new_uow() as uow:
        held = await uow.items.get(stock_id)
        await _sell(new_uow, stock_id, 5)
        assert await uow.items.update_many(Item.id == stock_id, values={"category": "sold"}) == 1
        held.rank -= 1
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with new_uow() as uow:
        item = await uow.items.get(stock_id)
    assert (item.rank, item.category, item.version) == (5, None, 2)


async def test_set_based_update_of_a_stale_copy_commits_when_the_copy_is_left_alone(
    new_uow: NewUow, stock_id: int
) -> None:
    """update_many itself checks no versions: with the stale copy unchanged, its change is committed."""
    async with new_uow() as uow:
        await uow.items.get(stock_id)
        await _sell(new_uow, stock_id, 5)
        assert await uow.items.update_many(Item.id == stock_id, values={"category": "sold"}) == 1
        await uow.commit()
    async with new_uow() as uow:
        item = await uow.items.get(stock_id)
    assert (item.rank, item.category, item.version) == (5, "sold", 3)


async def test_stale_copy_is_refused_after_a_soft_delete_many_the_database_did_not_match(
    new_uow: NewUow, stock_id: int
) -> None:
    """delete_many (soft) that matches only the stale copy neither deletes the row nor hides the copy's staleness."""
    async with new_uow() as uow:
        held = await uow.items.get(stock_id)
        await _sell(new_uow, stock_id, 5)
        assert await uow.items.delete_many(Item.rank == 10) == 0
        held.rank -= 1
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with new_uow() as uow:
        item = await uow.items.get(stock_id)
    assert (item.rank, item.version) == (5, 2)


async def test_stale_copy_stays_in_the_unit_of_work_after_a_hard_delete_many_the_database_did_not_match(
    new_uow: NewUow,
) -> None:
    """delete_many (hard) that matches only the stale copy keeps it tracked, so its later change is refused."""
    [owner] = await seed(new_uow(), owners=[Owner(name="a")])
    async with new_uow() as uow:
        held = await uow.owners.get(owner.id)
        async with new_uow() as other:
            (await other.owners.get(owner.id)).name = "b"
            await other.commit()
        assert await uow.owners.delete_many(Owner.name == "a") == 0
        held.name = "c"
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with new_uow() as uow:
        stored = await uow.owners.get(owner.id)
    assert (stored.name, stored.version) == ("b", 2)


async def test_hard_delete_many_of_a_row_held_stale_deletes_it(new_uow: NewUow) -> None:
    """delete_many removes the row the database matched, whatever version this unit of work held."""
    [owner] = await seed(new_uow(), owners=[Owner(name="a")])
    async with new_uow() as uow:
        await uow.owners.get(owner.id)
        async with new_uow() as other:
            (await other.owners.get(owner.id)).name = "b"
            await other.commit()
        assert await uow.owners.delete_many(Owner.name == "b") == 1
        assert await uow.owners.get_or_none(owner.id) is None
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.owners.count() == 0


async def test_an_entity_added_but_not_flushed_sees_a_set_based_change(new_uow: NewUow) -> None:
    """A new entity is flushed before the statement and then synchronised like a loaded one."""
    async with new_uow() as uow:
        item = uow.items.add(Item(name="new", rank=1))
        assert await uow.items.update_many(Item.rank == 1, values={"name": "seen"}) == 1
        assert (item.name, item.version) == ("seen", 2)
        await uow.commit()
    async with new_uow() as uow:
        stored = await uow.items.get(item.id)
    assert (stored.name, stored.version) == ("seen", 2)
