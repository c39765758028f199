"""Fixtures for the outbox tests: routing, a writing unit of work, and seeded products."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.outbox import OutboxRouting, OutboxWriter, Route, outbox
from tests.models import Allocated, AppUnitOfWork, Product

ROUTES = OutboxRouting({Allocated: Route("allocations", ordering_key=lambda event: event.sku)})


@pytest.fixture
def uow_factory(session_factory: async_sessionmaker[AsyncSession]) -> Callable[[], AppUnitOfWork]:
    writer = OutboxWriter(ROUTES)
    return lambda: AppUnitOfWork(session_factory, participants=[writer])


async def seed(uow_factory: Callable[[], AppUnitOfWork], *skus: str, stock: int = 1_000_000) -> None:
    async with uow_factory() as uow:
        for sku in skus:
            uow.products.add(Product(sku=sku, stock=stock))
        await uow.commit()


async def allocate(uow_factory: Callable[[], AppUnitOfWork], sku: str, times: int = 1) -> None:
    """One committed unit of work raising ``times`` Allocated events for ``sku``."""
    async with uow_factory() as uow:
        product = await uow.products.get(sku)
        for _ in range(times):
            product.allocate(1)
        await uow.commit()


async def outbox_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
    async with session_factory() as session:
        rows = await session.execute(select(outbox).order_by(outbox.c.position))
        return [dict(row._mapping) for row in rows]
