"""The classical mapping on a real database: round trips, queries, optimistic locking."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from examples.allocation.domain.model import Batch, OrderLine, Product
from examples.allocation.orm import allocations, order_lines
from examples.allocation.unit_of_work import AllocationUnitOfWork
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel import ConcurrencyError, NotFoundError


async def seed(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with AllocationUnitOfWork(session_factory) as uow:
        uow.products.add(Product("LAMP", [Batch("b1", "LAMP", 10), Batch("b2", "LAMP", 10, eta=date(2030, 1, 1))]))
        await uow.commit()


async def test_a_product_round_trips_with_its_batches_and_allocations(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Batches, their eta and their allocated lines come back as domain objects."""
    await seed(session_factory)
    async with AllocationUnitOfWork(session_factory) as uow:
        product = await uow.products.get("LAMP")
        assert product.version == 1
        product.allocate(OrderLine("o1", "LAMP", 3))
        await uow.commit()
    async with AllocationUnitOfWork(session_factory) as uow:
        product = await uow.products.get("LAMP")
        b1, b2 = product.batches
        assert (b1.reference, b1.eta, b1.available_quantity) == ("b1", None, 7)
        assert (b2.reference, b2.eta, b2.available_quantity) == ("b2", date(2030, 1, 1), 10)
        assert b1.allocations == {OrderLine("o1", "LAMP", 3)}
        assert product.version == 2


async def test_a_product_is_found_by_a_batch_reference(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """get_by_batchref joins through batches; an unknown reference is NotFoundError naming it."""
    await seed(session_factory)
    async with AllocationUnitOfWork(session_factory) as uow:
        assert (await uow.products.get_by_batchref("b2")).sku == "LAMP"
        with pytest.raises(NotFoundError, match="Batch 'nope'"):
            await uow.products.get_by_batchref("nope")


async def test_deallocating_removes_the_allocation_row(
    session_factory: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """Shrinking a batch deletes the association row; the order line row stays."""
    await seed(session_factory)
    async with AllocationUnitOfWork(session_factory) as uow:
        (await uow.products.get("LAMP")).allocate(OrderLine("o1", "LAMP", 8))
        await uow.commit()
    async with AllocationUnitOfWork(session_factory) as uow:
        (await uow.products.get("LAMP")).change_batch_quantity("b1", 5)
        await uow.commit()
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(allocations))).scalar_one() == 0
        assert (await conn.execute(select(func.count()).select_from(order_lines))).scalar_one() == 1


async def test_two_allocations_from_one_stale_product_cannot_both_commit(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Changes inside the aggregate bump its version, so the second writer gets ConcurrencyError."""
    await seed(session_factory)
    first, second = AllocationUnitOfWork(session_factory), AllocationUnitOfWork(session_factory)
    async with first, second:
        mine = await first.products.get("LAMP")
        theirs = await second.products.get("LAMP")
        mine.allocate(OrderLine("o1", "LAMP", 10))
        theirs.allocate(OrderLine("o2", "LAMP", 10))
        await first.commit()
        with pytest.raises(ConcurrencyError) as caught:
            await second.commit()
    assert caught.value.details["entity"] == "Product"
    assert caught.value.details["version"] == 1


async def test_concurrent_allocations_touching_only_batches_cannot_both_commit(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Two tasks allocate the last stock of one product at once; the domain never bumps the version, keel does."""
    async with AllocationUnitOfWork(session_factory) as uow:
        uow.products.add(Product("LAMP", [Batch("b1", "LAMP", 10)]))
        await uow.commit()
    both_loaded = asyncio.Event()
    loaded = 0

    async def allocate(orderid: str) -> str | None:
        nonlocal loaded
        async with AllocationUnitOfWork(session_factory) as uow:
            product = await uow.products.get("LAMP")
            loaded += 1
            if loaded == 2:
                both_loaded.set()
            await both_loaded.wait()  # both hold version 1 and see 10 available
            ref = product.allocate(OrderLine(orderid, "LAMP", 10))
            assert product.version == 1  # only a batch and its allocations changed
            await uow.commit()
            return ref

    outcomes = await asyncio.gather(allocate("o1"), allocate("o2"), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["ConcurrencyError", "str"]
    async with AllocationUnitOfWork(session_factory) as uow:
        product = await uow.products.get("LAMP")
    assert product.batches[0].available_quantity == 0
    assert product.version == 2
