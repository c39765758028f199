"""The allocation service's unit of work: its repositories, declared."""

from __future__ import annotations

from examples.allocation.repositories import AllocationsViewRepository, ProductRepository
from keel import SqlAlchemyUnitOfWork


class AllocationUnitOfWork(SqlAlchemyUnitOfWork):
    products: ProductRepository
    allocations_view: AllocationsViewRepository
