"""The read side: ``allocations_view``, kept up to date by event handlers.

Queries read a table shaped for them instead of walking the aggregate
(Cosmic Python's CQRS chapter); the handlers in ``handlers.py`` maintain it
after each allocation and deallocation commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from examples.allocation.unit_of_work import AllocationUnitOfWork


@dataclass
class AllocationRow:
    """One row of ``allocations_view``: which batch serves an order's sku."""

    orderid: str
    sku: str
    batchref: str


async def allocations(orderid: str, uow: AllocationUnitOfWork) -> list[dict[str, str]]:
    """``[{"sku", "batchref"}, ...]`` for an order, by sku; empty when nothing is allocated.

    Only reads: give it a read-only unit of work (``container.read_only_unit_of_work()``).
    """
    async with uow:
        rows = await uow.allocations_view.list(orderid=orderid, order_by="sku")
    return [{"sku": row.sku, "batchref": row.batchref} for row in rows]
