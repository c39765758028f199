"""Repositories of the allocation service."""

from __future__ import annotations

from sqlalchemy import select

from examples.allocation.domain.model import Product
from examples.allocation.orm import allocations, batches, order_lines, products
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

    async def allocated_batchref(self, orderid: str, sku: str) -> str | None:
        """The batch that holds ``orderid``'s line of ``sku`` now, read under a lock on the product's row.

        The lock (``SELECT ... FOR UPDATE``, held until the transaction ends)
        orders this read after every change to the product that committed
        before it and before every change that commits after it: what a
        read-model handler writes from it cannot be overtaken by an older event.
        """
        await self.session.execute(select(products.c.sku).where(products.c.sku == sku).with_for_update())
        stmt = (
            select(batches.c.reference)
            .join(allocations, allocations.c.batch_id == batches.c.id)
            .join(order_lines, order_lines.c.id == allocations.c.orderline_id)
            .where(order_lines.c.orderid == orderid, order_lines.c.sku == sku)
        )
        return (await self.session.execute(stmt)).scalars().first()


class AllocationsViewRepository(SqlAlchemyRepository[AllocationRow]):
    """Rows of the read model, keyed by (orderid, sku)."""
