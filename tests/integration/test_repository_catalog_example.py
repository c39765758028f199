"""The catalog example: the partial unique index recipe and query-parameter browsing, on both backends."""

from __future__ import annotations

from decimal import Decimal

import pytest
from examples.catalog.orm import CatalogProduct
from examples.catalog.repository import CatalogUnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import ConflictError, ValidationError

Factory = async_sessionmaker[AsyncSession]


def product(sku: str, name: str = "lamp", price: str = "10.00", category: str | None = "lamps") -> CatalogProduct:
    return CatalogProduct(sku=sku, name=name, price=Decimal(price), category=category)


async def test_a_deleted_products_sku_can_be_reused_but_live_skus_stay_unique(session_factory: Factory) -> None:
    """The partial unique index ignores soft-deleted rows only."""
    uow = CatalogUnitOfWork(session_factory)
    async with uow:
        old = uow.products.add(product("SKU-1"))
        await uow.commit()
    async with uow:
        await uow.products.delete(await uow.products.get(old.id))
        await uow.commit()
    async with uow:
        uow.products.add(product("SKU-1", name="new lamp"))
        await uow.commit()
    async with uow:
        uow.products.add(product("SKU-1", name="duplicate"))
        with pytest.raises(ConflictError):
            await uow.commit()
    async with uow:
        await uow.products.restore(await uow.products.get(old.id, include_deleted=True))
        with pytest.raises(ConflictError):
            await uow.commit()
    async with uow:
        assert [p.name for p in await uow.products.list(sku="SKU-1")] == ["new lamp"]
        assert await uow.products.count(sku="SKU-1", include_deleted=True) == 2


async def test_browse_turns_query_parameters_into_a_cursor_page(session_factory: Factory) -> None:
    """Filters, sort and cursor from a query string; bad parameters are ValidationErrors."""
    uow = CatalogUnitOfWork(session_factory)
    async with uow:
        uow.products.add_many(
            [
                product("A", "desk lamp", "30.00"),
                product("B", "floor lamp", "80.00"),
                product("C", "rug", "45.50", "floor"),
                product("D", "reading lamp", "20.00"),
            ]
        )
        await uow.commit()
    async with uow:
        first = await uow.products.browse({"category": "lamps", "price__lt": "50", "sort": "-price", "size": "1"})
        second = await uow.products.browse(
            {"category": "lamps", "price__lt": "50", "sort": "-price", "size": "1", "cursor": first.next_cursor}
        )
        assert [p.sku for p in first] + [p.sku for p in second] == ["A", "D"]
        assert not second.has_next
        for bad in ({"colour": "red"}, {"price__lt": "cheap"}, {"sort": "secret"}, {"cursor": "forged"}):
            with pytest.raises(ValidationError):
                await uow.products.browse(bad)
