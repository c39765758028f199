"""The allocation domain: products, batches, order lines, and their messages."""

from __future__ import annotations

from examples.allocation.domain.commands import Allocate, ChangeBatchQuantity, CreateBatch
from examples.allocation.domain.events import Allocated, Deallocated, OutOfStock
from examples.allocation.domain.model import Batch, InvalidSku, OrderLine, Product

__all__ = [
    "Allocate",
    "Allocated",
    "Batch",
    "ChangeBatchQuantity",
    "CreateBatch",
    "Deallocated",
    "InvalidSku",
    "OrderLine",
    "OutOfStock",
    "Product",
]
