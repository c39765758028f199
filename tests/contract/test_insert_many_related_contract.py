"""Contract: insert_many saves the related objects entities carry, never drops them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.contract.models import Owner, Tag

NewUow = Callable[[], Any]


async def test_insert_many_saves_the_children_of_parents(new_uow: NewUow) -> None:
    """Parents given with children in a collection are stored with those children."""
    async with new_uow() as uow:
        owners = [Owner(name=f"o{i}", tags=[Tag(label=f"o{i}-a"), Tag(label=f"o{i}-b")]) for i in range(3)]
        assert await uow.owners.insert_many(owners) == 3
        await uow.commit()
    assert all(o.id is not None and o.version == 1 for o in owners)
    async with new_uow() as uow:
        stored = await uow.owners.list(order_by="name")
        assert [(o.name, [t.label for t in o.tags]) for o in stored] == [
            (f"o{i}", [f"o{i}-a", f"o{i}-b"]) for i in range(3)
        ]


async def test_insert_many_of_parents_without_children_still_works(new_uow: NewUow) -> None:
    """An empty collection carries nothing: such parents are inserted (set-based on SQL) as before."""
    async with new_uow() as uow:
        assert await uow.owners.insert_many([Owner(name="a", tags=[]), Owner(name="b")]) == 2
        await uow.commit()
    async with new_uow() as uow:
        assert [(o.name, o.tags) for o in await uow.owners.list(order_by="name")] == [("a", []), ("b", [])]


async def test_parents_saved_with_their_children_stay_in_the_unit_of_work(new_uow: NewUow) -> None:
    """Entities that took the ORM path are tracked like add_many's: a later change is saved."""
    async with new_uow() as uow:
        (owner,) = [Owner(name="a", tags=[Tag(label="x")])]
        await uow.owners.insert_many([owner])
        owner.name = "renamed"
        await uow.commit()
    async with new_uow() as uow:
        assert [o.name for o in await uow.owners.list()] == ["renamed"]
