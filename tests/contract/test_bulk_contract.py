"""Contract: add_many, update_many and delete_many."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel import ValidationError
from tests.contract.models import Item, Plain
from tests.support.seeding import seed

NewUow = Callable[[], Any]


@pytest.fixture
async def ids(new_uow: NewUow) -> list[int]:
    """Four items; "d" is soft-deleted."""
    items = await seed(new_uow(), items=(Item(name=n, category="x" if n < "c" else "y", rank=1) for n in "abcd"))
    async with new_uow() as uow:
        await uow.items.delete(await uow.items.get(items[3].id))
        await uow.commit()
    return [int(i.id) for i in items]


async def test_add_many_stores_every_entity(new_uow: NewUow) -> None:
    """add_many returns the entities, all stored on commit with keys and versions."""
    added = await seed(new_uow(), items=(Item(name=f"n{i}") for i in range(25)))
    assert len({i.id for i in added}) == 25
    assert {i.version for i in added} == {1}
    async with new_uow() as uow:
        assert await uow.items.count() == 25


async def test_update_many_changes_matching_live_rows_and_bumps_versions(new_uow: NewUow, ids: list[int]) -> None:
    """One statement updates every match, skips soft-deleted rows, raises version and updated_at."""
    async with new_uow() as uow:
        before = {i.id: i.updated_at for i in await uow.items.list(include_deleted=True)}
    async with new_uow() as uow:
        changed = await uow.items.update_many(Item.category == "y", values={"rank": 9})
        await uow.commit()
    assert changed == 1
    async with new_uow() as uow:
        rows = {i.name: i for i in await uow.items.list(include_deleted=True)}
    assert (rows["c"].rank, rows["c"].version) == (9, 2)
    assert rows["c"].updated_at > before[rows["c"].id]
    assert (rows["d"].rank, rows["d"].version) == (1, 2)  # deleted: untouched since its delete
    assert (rows["a"].rank, rows["a"].version) == (1, 1)


async def test_update_many_can_include_deleted_rows(new_uow: NewUow, ids: list[int]) -> None:
    """include_deleted=True reaches soft-deleted rows too."""
    async with new_uow() as uow:
        assert await uow.items.update_many(category="y", values={"rank": 5}, include_deleted=True) == 2
        await uow.commit()
    async with new_uow() as uow:
        assert [i.rank for i in await uow.items.list(category="y", include_deleted=True)] == [5, 5]


async def test_update_many_is_rolled_back_with_its_unit_of_work(new_uow: NewUow, ids: list[int]) -> None:
    """Set-based changes belong to the transaction: no commit, no change."""
    async with new_uow() as uow:
        await uow.items.update_many(values={"rank": 7})
        assert [i.rank for i in await uow.items.list()] == [7, 7, 7]
    async with new_uow() as uow:
        assert [i.rank for i in await uow.items.list()] == [1, 1, 1]


@pytest.mark.parametrize("values", [{}, {"version": 5}, {"deleted_at": None}, {"id": 3}, {"nope": 1}])
async def test_update_many_refuses_keel_managed_and_unknown_columns(new_uow: NewUow, values: dict[str, Any]) -> None:
    """version, timestamps, deleted_at, the key and unknown names are refused."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            await uow.items.update_many(values=values)


async def test_delete_many_soft_deletes_matching_live_rows(new_uow: NewUow, ids: list[int]) -> None:
    """delete_many on a soft-delete model sets deleted_at on live matches and counts them."""
    async with new_uow() as uow:
        assert await uow.items.delete_many(category="y") == 1
        await uow.commit()
    async with new_uow() as uow:
        assert [i.name for i in await uow.items.list()] == ["a", "b"]
        gone = await uow.items.get(ids[2], include_deleted=True)
    assert gone.deleted_at is not None
    assert gone.version == 2


async def test_delete_many_removes_rows_of_models_without_soft_delete(new_uow: NewUow) -> None:
    """Without deleted_at, delete_many is a DELETE."""
    await seed(new_uow(), plain=[Plain(code="a", qty=1), Plain(code="b", qty=2), Plain(code="c", qty=2)])
    async with new_uow() as uow:
        assert await uow.plain.delete_many(Plain.qty == 2) == 2
        await uow.commit()
    async with new_uow() as uow:
        assert [p.code for p in await uow.plain.list()] == ["a"]


async def test_entities_already_loaded_see_set_based_changes(new_uow: NewUow, ids: list[int]) -> None:
    """An entity held in the unit of work reflects update_many's values and version."""
    async with new_uow() as uow:
        held = await uow.items.get(ids[0])
        await uow.items.update_many(Item.id == ids[0], values={"rank": 4})
        assert (held.rank, held.version) == (4, 2)
        held.name = "changed"
        await uow.commit()
    async with new_uow() as uow:
        item = await uow.items.get(ids[0])
    assert (item.name, item.rank, item.version) == ("changed", 4, 3)


async def test_insert_many_writes_rows_now_and_fills_keys_and_keel_columns(new_uow: NewUow) -> None:
    """insert_many stores entities at once (visible to reads), with keys, version 1 and timestamps."""
    async with new_uow() as uow:
        items = [Item(name=f"n{i}") for i in range(30)]
        assert await uow.items.insert_many(items) == 30
        assert await uow.items.count() == 30
        await uow.commit()
    assert len({i.id for i in items}) == 30
    assert all(i.id is not None and i.version == 1 and i.created_at is not None for i in items)
    async with new_uow() as uow:
        stored = await uow.items.get(items[5].id)
    assert (stored.name, stored.version, stored.created_at) == ("n5", 1, items[5].created_at)


async def test_insert_many_entities_are_not_tracked_afterwards(new_uow: NewUow) -> None:
    """Changing an entity after insert_many saves nothing: it is a set-based write, not add()."""
    async with new_uow() as uow:
        (item,) = [Item(name="a")]
        await uow.items.insert_many([item])
        item.name = "changed"
        await uow.commit()
    async with new_uow() as uow:
        assert [i.name for i in await uow.items.list()] == ["a"]


async def test_insert_many_takes_plain_rows_and_is_rolled_back_with_its_unit_of_work(new_uow: NewUow) -> None:
    """Mappings of column values work too; without commit nothing stays."""
    async with new_uow() as uow:
        assert await uow.plain.insert_many([{"code": "a", "qty": 1}, {"code": "b", "qty": 2}]) == 2
        assert await uow.plain.count() == 2
    async with new_uow() as uow:
        assert await uow.plain.count() == 0


async def test_insert_many_refuses_a_mix_of_given_and_missing_keys(new_uow: NewUow) -> None:
    """Some entities with a key and some without is a ValidationError, as is mixing entities and mappings."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            await uow.items.insert_many([Item(id=100, name="a"), Item(name="b")])
        with pytest.raises(ValidationError):
            await uow.plain.insert_many([Plain(code="a"), {"code": "b"}])


@pytest.mark.parametrize("reverse", [False, True], ids=["extra-key-last", "extra-key-first"])
async def test_insert_many_completes_mappings_whatever_keys_each_has(new_uow: NewUow, reverse: bool) -> None:
    """Every mapping keeps its own values, others get defaults or NULL, whichever row comes first."""
    rows: list[dict[str, Any]] = [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b", "rank": 7},
        {"id": 3, "name": "c", "category": "x", "version": None},
    ]
    async with new_uow() as uow:
        assert await uow.items.insert_many(rows[::-1] if reverse else rows) == 3
        await uow.commit()
    async with new_uow() as uow:
        stored = {i.name: i for i in await uow.items.list()}
    assert {n: (i.rank, i.category) for n, i in stored.items()} == {"a": (None, None), "b": (7, None), "c": (None, "x")}
    assert {i.version for i in stored.values()} == {1}
    assert all(i.created_at is not None and i.updated_at is not None for i in stored.values())


async def test_insert_many_mappings_fill_keel_columns_and_generated_keys(new_uow: NewUow) -> None:
    """Mappings of a versioned, timestamped model without keys are stored with keys, version 1 and timestamps."""
    async with new_uow() as uow:
        assert await uow.items.insert_many([{"name": "a"}, {"name": "b", "rank": 2}]) == 2
        await uow.commit()
    async with new_uow() as uow:
        stored = await uow.items.list(order_by="name")
        assert [(i.name, i.rank, i.version) for i in stored] == [("a", None, 1), ("b", 2, 1)]
        assert len({i.id for i in stored}) == 2
        assert all(i.created_at is not None for i in stored)
        with pytest.raises(ValidationError):
            await uow.items.insert_many([{"id": 50, "name": "a"}, {"name": "b"}])
        with pytest.raises(ValidationError):
            await uow.items.insert_many([{"name": "a", "nope": 1}])
