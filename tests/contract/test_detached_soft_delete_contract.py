"""Contract: soft delete and restore of entities from another unit of work; deleted-row options need soft delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel import ConcurrencyError, ConflictError, ValidationError
from tests.contract.models import Item, Plain
from tests.support.seeding import seed

NewUow = Callable[[], Any]


@pytest.fixture
async def detached(new_uow: NewUow) -> Item:
    """An item loaded in a unit of work that has been left."""
    [item] = await seed(new_uow(), items=[Item(name="a")])
    async with new_uow() as uow:
        loaded: Item = await uow.items.get(item.id)
    return loaded


async def test_delete_of_an_entity_from_a_closed_unit_of_work_soft_deletes_it(new_uow: NewUow, detached: Item) -> None:
    """delete() attaches an entity loaded elsewhere, as hard_delete does, and the soft delete is saved."""
    async with new_uow() as uow:
        await uow.items.delete(detached)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.items.get_or_none(detached.id) is None
        stored = await uow.items.get(detached.id, include_deleted=True)
    assert stored.deleted_at is not None
    assert stored.version == 2


async def test_restore_of_an_entity_from_a_closed_unit_of_work_restores_it(new_uow: NewUow, detached: Item) -> None:
    """restore() attaches an entity loaded elsewhere too."""
    async with new_uow() as uow:
        await uow.items.delete(await uow.items.get(detached.id))
        await uow.commit()
    async with new_uow() as uow:
        gone = await uow.items.get(detached.id, include_deleted=True)
    async with new_uow() as uow:
        await uow.items.restore(gone)
        await uow.commit()
    async with new_uow() as uow:
        stored = await uow.items.get(detached.id)
    assert (stored.deleted_at, stored.version) == (None, 3)


async def test_delete_of_a_stale_entity_from_a_closed_unit_of_work_raises(new_uow: NewUow, detached: Item) -> None:
    """The attached entity is saved with the version it was loaded at: a concurrent change wins."""
    item_id = detached.id
    async with new_uow() as uow:
        (await uow.items.get(item_id)).name = "changed"
        await uow.commit()
    async with new_uow() as uow:
        await uow.items.delete(detached)
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with new_uow() as uow:
        stored = await uow.items.get(item_id)
    assert (stored.name, stored.deleted_at) == ("changed", None)


READS = {
    "list": lambda repo, **kw: repo.list(**kw),
    "count": lambda repo, **kw: repo.count(**kw),
    "exists": lambda repo, **kw: repo.exists(**kw),
    "paginate": lambda repo, **kw: repo.paginate(**kw),
    "paginate_by_cursor": lambda repo, **kw: repo.paginate_by_cursor(**kw),
    "update_many": lambda repo, **kw: repo.update_many(values={"qty": 1}, **kw),
}


OPTIONS = [(read, option) for read in READS for option in ("only_deleted", "include_deleted")]


@pytest.mark.parametrize(("read", "option"), [p for p in OPTIONS if p != ("update_many", "only_deleted")])
async def test_deleted_row_options_on_a_model_without_soft_delete_are_refused(
    new_uow: NewUow, read: str, option: str
) -> None:
    """only_deleted/include_deleted on a model without deleted_at is a ValidationError, not every row."""
    await seed(new_uow(), plain=[Plain(code="a", qty=1)])
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            await READS[read](uow.plain, **{option: True})
        with pytest.raises(ValidationError):
            uow.plain.select(**{option: True})
        assert await uow.plain.count() == 1


async def test_delete_of_a_second_copy_of_a_row_held_in_this_unit_of_work_is_a_conflict(
    new_uow: NewUow, detached: Item
) -> None:
    """An entity from elsewhere cannot join a unit of work that already holds a copy of its row."""
    async with new_uow() as uow:
        await uow.items.get(detached.id)
        with pytest.raises(ConflictError):
            await uow.items.delete(detached)
