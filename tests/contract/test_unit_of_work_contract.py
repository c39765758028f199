"""Contract: commit, rollback, events after commit, optimistic locking, seen aggregates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel import ConcurrencyError
from tests.contract.models import Item, Renamed
from tests.support.seeding import seed

NewUow = Callable[[], Any]


async def add_item(new_uow: NewUow, name: str = "lamp") -> int:
    [item] = await seed(new_uow(), items=[Item(name=name)])
    return int(item.id)


async def test_leaving_without_commit_discards_the_work_and_its_events(new_uow: NewUow) -> None:
    """Uncommitted changes vanish and their events are never released."""
    item_id = await add_item(new_uow)
    uow = new_uow()
    async with uow:
        (await uow.items.get(item_id)).rename("desk")
        uow.items.add(Item(name="extra"))
    assert list(uow.collect_new_events()) == []
    async with new_uow() as check:
        assert (await check.items.get(item_id)).name == "lamp"
        assert await check.items.count() == 1


async def test_events_of_seen_aggregates_are_released_only_after_commit(new_uow: NewUow) -> None:
    """collect_new_events yields nothing before commit and the recorded events after it."""
    item_id = await add_item(new_uow)
    uow = new_uow()
    async with uow:
        (await uow.items.get(item_id)).rename("desk")
        assert list(uow.collect_new_events()) == []
        await uow.commit()
    events = list(uow.collect_new_events())
    assert [(type(e), e.name) for e in events] == [(Renamed, "desk")]


async def test_explicit_rollback_undoes_changes_and_drops_events(new_uow: NewUow) -> None:
    """rollback() inside the block forgets the work; a later commit stores nothing of it."""
    item_id = await add_item(new_uow)
    uow = new_uow()
    async with uow:
        (await uow.items.get(item_id)).rename("desk")
        await uow.rollback()
        await uow.commit()
    assert list(uow.collect_new_events()) == []
    async with new_uow() as check:
        assert (await check.items.get(item_id)).name == "lamp"


async def test_a_commit_on_a_stale_version_raises_concurrency_error(new_uow: NewUow) -> None:
    """Two units of work change the same row: the second commit fails and changes nothing."""
    item_id = await add_item(new_uow)
    first, second = new_uow(), new_uow()
    async with first, second:
        mine = await first.items.get(item_id)
        theirs = await second.items.get(item_id)
        mine.name = "mine"
        await first.commit()
        theirs.name = "theirs"
        with pytest.raises(ConcurrencyError) as caught:
            await second.commit()
    assert caught.value.entity == "Item"
    assert caught.value.version == 1
    async with new_uow() as check:
        item = await check.items.get(item_id)
    assert (item.name, item.version) == ("mine", 2)


async def test_a_stale_copy_from_an_earlier_unit_of_work_cannot_overwrite(new_uow: NewUow) -> None:
    """Re-adding an entity loaded before someone else's commit fails on commit."""
    item_id = await add_item(new_uow)
    async with new_uow() as uow:
        stale = await uow.items.get(item_id)
    async with new_uow() as uow:
        (await uow.items.get(item_id)).name = "fresh"
        await uow.commit()
    stale.name = "stale"
    async with new_uow() as uow:
        uow.items.add(stale)
        with pytest.raises(ConcurrencyError):
            await uow.commit()


async def test_version_rises_once_per_committed_change_and_updated_at_moves(new_uow: NewUow) -> None:
    """Each commit that changes the row adds one to version; a commit without change adds none."""
    item_id = await add_item(new_uow)
    async with new_uow() as uow:
        item = await uow.items.get(item_id)
        created, updated = item.created_at, item.updated_at
        item.name = "b"
        await uow.commit()
        await uow.commit()
        item.name = "c"
        await uow.commit()
    assert item.version == 3
    assert item.updated_at > updated
    async with new_uow() as uow:
        again = await uow.items.get(item_id)
    assert (again.version, again.created_at) == (3, created)


async def test_the_same_row_is_the_same_object_within_a_unit_of_work(new_uow: NewUow) -> None:
    """An identity map: two reads of one row give one object."""
    item_id = await add_item(new_uow)
    async with new_uow() as uow:
        first = await uow.items.get(item_id)
        (listed,) = await uow.items.list()
        assert listed is first


async def test_every_returned_or_added_aggregate_is_seen(new_uow: NewUow) -> None:
    """Entities from get, list, pages and add are all tracked as seen."""
    await add_item(new_uow, "a")
    await add_item(new_uow, "b")
    async with new_uow() as uow:
        await uow.items.list()
        added = uow.items.add(Item(name="c"))
        seen = {id(a) for a in uow.seen}
        assert added in uow.seen
        assert len(seen) == 3


async def test_a_query_between_two_changes_makes_two_updates_as_autoflush_does(new_uow: NewUow) -> None:
    """Every query flushes pending changes first, so change, query, change is two version bumps everywhere."""
    item_id = await add_item(new_uow)
    async with new_uow() as uow:
        held = await uow.items.get(item_id)
        held.name = "first"
        assert await uow.items.count(name="first") == 1
        assert held.version == 2
        held.name = "second"
        fresh = uow.items.add(Item(name="fresh"))
        await uow.items.list()
        fresh.name = "fresher"
        await uow.commit()
    async with new_uow() as uow:
        assert (await uow.items.get(item_id)).version == 3
        assert (await uow.items.get(fresh.id)).version == 2  # the INSERT, then one UPDATE


async def test_a_pending_change_and_update_many_on_the_same_row_are_two_updates(new_uow: NewUow) -> None:
    """update_many flushes the pending change first: version 1 -> 2 (the change) -> 3 (the statement)."""
    item_id = await add_item(new_uow)
    async with new_uow() as uow:
        held = await uow.items.get(item_id)
        held.name = "changed"
        assert await uow.items.update_many(Item.id == item_id, values={"rank": 50}) == 1
        await uow.commit()
    async with new_uow() as uow:
        stored = await uow.items.get(item_id)
    assert (stored.name, stored.rank, stored.version) == ("changed", 50, 3)


async def test_a_copy_from_an_earlier_unit_of_work_added_back_is_saved_once(new_uow: NewUow) -> None:
    """Re-adding a detached copy with a change, then querying, then committing is one version-checked UPDATE."""
    item_id = await add_item(new_uow)
    async with new_uow() as uow:
        copy = await uow.items.get(item_id)
    async with new_uow() as uow:
        copy.name = "renamed"
        uow.items.add(copy)
        assert await uow.items.count(name="renamed") == 1
        await uow.commit()
    async with new_uow() as uow:
        stored = await uow.items.get(item_id)
    assert (stored.name, stored.version) == ("renamed", 2)


async def test_an_aggregate_bumping_its_own_version_rises_by_one_per_commit(new_uow: NewUow) -> None:
    """Like SQLAlchemy's version counter: the new version is the old one plus one, whatever the attribute says."""
    item_id = await add_item(new_uow)
    versions = []
    for name in ("desk", "chair"):
        async with new_uow() as uow:
            item = await uow.items.get(item_id)
            item.rename(name)
            item.version += 1  # an aggregate forcing a version check (Cosmic Python's Product does)
            await uow.commit()
        async with new_uow() as check:
            versions.append((await check.items.get(item_id)).version)
    assert versions == [2, 3]
