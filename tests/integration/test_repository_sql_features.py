"""SQL-only repository features: row locks, loader options over soft delete, the windowed list_and_count."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from keel import ConcurrencyError, SqlAlchemyRepository
from keel.domain.messages import utcnow
from tests.contract.models import ContractUnitOfWork, Item, Owner, Plain, Tag

Factory = async_sessionmaker[AsyncSession]


async def seed(session_factory: Factory) -> None:
    async with ContractUnitOfWork(session_factory) as uow:
        uow.plain.add(Plain(code="hot", qty=0))
        await uow.commit()


async def test_concurrent_increments_under_for_update_all_land_without_conflicts(session_factory: Factory) -> None:
    """Ten units of work incrementing one row with for_update=True: each waits its turn, none conflicts."""
    await seed(session_factory)

    async def increment() -> None:
        async with ContractUnitOfWork(session_factory) as uow:
            row = await uow.plain.get("hot", for_update=True)
            row.qty += 1
            await uow.commit()

    await asyncio.gather(*(increment() for _ in range(10)))
    async with ContractUnitOfWork(session_factory) as uow:
        assert (await uow.plain.get("hot")).qty == 10


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_nowait_on_a_locked_row_is_a_concurrency_error_and_skip_locked_a_miss(session_factory: Factory) -> None:
    """While one unit of work holds the row, nowait raises ConcurrencyError and skip_locked returns None."""
    await seed(session_factory)
    async with ContractUnitOfWork(session_factory) as holder:
        await holder.plain.get("hot", for_update=True)
        async with ContractUnitOfWork(session_factory) as other:
            assert await other.plain.get_or_none("hot", for_update=True, skip_locked=True) is None
        async with ContractUnitOfWork(session_factory) as other:
            with pytest.raises(ConcurrencyError):
                await other.plain.get("hot", for_update=True, nowait=True)


async def test_loader_options_keep_soft_deleted_children_hidden(session_factory: Factory) -> None:
    """load=[selectinload(Owner.tags)] loads the live tags only: the soft-delete criteria reach the load."""
    async with ContractUnitOfWork(session_factory) as uow:
        owner = uow.owners.add(Owner(id=1, name="o"))
        owner.tags.extend([Tag(id=1, label="live"), Tag(id=2, label="gone")])
        await uow.commit()
    async with ContractUnitOfWork(session_factory) as uow:
        gone = await uow.session.get(Tag, 2)
        assert gone is not None
        gone.deleted_at = utcnow()
        await uow.commit()
    async with ContractUnitOfWork(session_factory) as uow:
        loaded = await uow.owners.get(1, load=[selectinload(Owner.tags)])
        assert "tags" in inspect(loaded).dict
        assert [t.label for t in loaded.tags] == ["live"]
        listed = await uow.owners.list(load=[selectinload(Owner.tags)])
        assert [t.label for t in listed[0].tags] == ["live"]


async def test_a_locked_read_refreshes_the_copy_already_held(session_factory: Factory) -> None:
    """An entity loaded before someone else changed it shows the locked row's values after get(for_update=True)."""
    await seed(session_factory)
    async with ContractUnitOfWork(session_factory) as uow:
        held = await uow.plain.get("hot")
        async with ContractUnitOfWork(session_factory) as other:
            (await other.plain.get("hot")).qty = 5
            await other.commit()
        assert held.qty == 0
        assert await uow.plain.get("hot", for_update=True) is held
        assert held.qty == 5


class WindowedItems(SqlAlchemyRepository[Item]):
    count_with_window = True


async def test_list_and_count_with_a_window_count_agrees_with_two_queries(session_factory: Factory) -> None:
    """count_with_window=True gives the same rows and total in one query; past the end it still counts."""
    async with ContractUnitOfWork(session_factory) as uow:
        uow.items.add_many(Item(name=f"i{n:02}", rank=n) for n in range(12))
        await uow.commit()
    async with session_factory() as session:
        windowed = WindowedItems(session)
        two = SqlAlchemyRepository(session, model=Item)
        cases: list[dict[str, Any]] = [{"limit": 3, "offset": 2}, {"offset": 50}, {"rank": 99}, {}]
        for kwargs in cases:
            rows, total = await windowed.list_and_count(order_by="rank", **kwargs)
            expected_rows, expected_total = await two.list_and_count(order_by="rank", **kwargs)
            assert ([i.id for i in rows], total) == ([i.id for i in expected_rows], expected_total)
