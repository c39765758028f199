"""Repositories of the allocation service."""

from __future__ import annotations

from examples.allocation.domain.model import Product
from examples.allocation.orm import batches, products
from examples.allocation.views import AllocationRow
from keel import NotFoundError, SqlAlchemyRepository


class ProductRepository(SqlAlchemyRepository[Product]):
    """Products by sku (inherited ``get``) and by the reference of one of their batches."""

    async def get_by_batchref(self, ref: str) -> Product:
        stmt = self.select().join(batches, batches.c.sku == products.c.sku).where(batches.c.reference == ref)
        found = await self.scalars(stmt)
        if not found:
            raise NotFoundError(entity="Batch", id=ref)
        return found[0]


class AllocationsViewRepository(SqlAlchemyRepository[AllocationRow]):
    """Rows of the read model, keyed by (orderid, sku)."""
