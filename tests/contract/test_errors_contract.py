"""Contract: the same typed errors, with the same content, on the twin, SQLite and PostgreSQL.

After a failed commit the unit of work behaves as SQLAlchemy's session after a
failed flush: it refuses further work with ``UnitOfWorkError`` until
``rollback()`` (an automatic rollback would silently drop the rest of the
work), then it works again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel import ConflictError, UnitOfWorkError
from tests.contract.models import Item, Plain
from tests.support.seeding import seed

NewUow = Callable[[], Any]


async def seed_plain(new_uow: NewUow, code: str = "X", qty: int = 1) -> None:
    await seed(new_uow(), plain=[Plain(code=code, qty=qty)])


async def test_after_a_conflicting_insert_the_unit_of_work_must_be_rolled_back(new_uow: NewUow) -> None:
    """Insert, catch ConflictError, then get: UnitOfWorkError everywhere; after rollback() the stored row."""
    await seed_plain(new_uow)
    async with new_uow() as uow:
        uow.plain.add(Plain(code="X", qty=2))
        with pytest.raises(ConflictError):
            await uow.commit()
        with pytest.raises(UnitOfWorkError, match="rollback"):
            await uow.plain.get("X")
        with pytest.raises(UnitOfWorkError, match="rollback"):
            await uow.plain.list()
        with pytest.raises(UnitOfWorkError, match="rollback"):
            await uow.commit()
        await uow.rollback()
        stored = await uow.plain.get("X")
        assert stored.qty == 1
        stored.qty = 3
        await uow.commit()
    async with new_uow() as uow:
        assert (await uow.plain.get("X")).qty == 3


async def test_a_conflict_found_by_a_querys_autoflush_also_needs_a_rollback(new_uow: NewUow) -> None:
    """A taken key fails the next query (autoflush) with ConflictError, then UnitOfWorkError until rollback()."""
    await seed_plain(new_uow)
    async with new_uow() as uow:
        uow.plain.add(Plain(code="X", qty=2))
        with pytest.raises(ConflictError):
            await uow.plain.list()
        with pytest.raises(UnitOfWorkError, match="rollback"):
            await uow.plain.count()
        await uow.rollback()
        assert [p.qty for p in await uow.plain.list()] == [1]


async def test_a_duplicate_key_conflict_names_the_constraint_not_the_value(new_uow: NewUow) -> None:
    """The primary key's conflict says constraint, table and columns, identically, and never the key's value."""
    await seed_plain(new_uow, code="SECRET-KEY")
    async with new_uow() as uow:
        uow.plain.add(Plain(code="SECRET-KEY", qty=2))
        with pytest.raises(ConflictError) as raised:
            await uow.commit()
    error = raised.value
    assert (error.code, error.constraint, error.table, error.columns) == (
        "conflict",
        "pk_repo_plain",
        "repo_plain",
        ["code"],
    )
    assert error.message == "a row with the same repo_plain.code already exists (pk_repo_plain)"
    problem = error.to_problem(409)
    assert "SECRET-KEY" not in str(problem) + str(error)
    assert "sqlstate" not in str(problem)


async def test_an_entity_another_open_unit_of_work_holds_is_refused(new_uow: NewUow) -> None:
    """add, delete, restore and hard_delete of an entity another open unit of work holds are refused; later accepted."""
    [added] = await seed(new_uow(), items=[Item(name="lamp")])
    item_id = added.id
    async with new_uow() as first:
        item = await first.items.get(item_id)
        async with new_uow() as second:
            with pytest.raises(UnitOfWorkError, match="another open unit of work"):
                second.items.add(item)
            with pytest.raises(UnitOfWorkError, match="another open unit of work"):
                second.items.add_many([item])
            with pytest.raises(UnitOfWorkError, match="another open unit of work"):
                await second.items.hard_delete(item)
            with pytest.raises(UnitOfWorkError, match="another open unit of work"):
                await second.items.delete(item)
            with pytest.raises(UnitOfWorkError, match="another open unit of work"):
                await second.items.restore(item)
        assert item.deleted_at is None  # the refused soft delete did not reach the other unit of work's copy
    async with new_uow() as third:
        await third.items.hard_delete(item)  # detached now, as after a closed session
        await third.commit()
    async with new_uow() as check:
        assert await check.items.get_or_none(item_id, include_deleted=True) is None
