"""A command survives its database connection being killed mid-flight (PostgreSQL)."""

from __future__ import annotations

from typing import ClassVar

import asyncpg
import pytest
from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate, CreateBatch
from examples.allocation.unit_of_work import AllocationUnitOfWork
from sqlalchemy import text

from tests.support.services import POSTGRES_ADMIN_URL


class DroppedConnectionUnitOfWork(AllocationUnitOfWork):
    """The first unit of work opened has its server process terminated right after it starts."""

    drops: ClassVar[int] = 0

    async def _begin(self) -> None:
        await super()._begin()
        if DroppedConnectionUnitOfWork.drops:
            DroppedConnectionUnitOfWork.drops -= 1
            pid = (await self.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Only PostgreSQL: terminating the server process behind a connection is the point."""
    return str(request.param)


async def test_a_dropped_connection_is_retried_with_a_new_one(container: AllocationContainer) -> None:
    """DatabaseUnavailableError is transient for the container's bus: the retry succeeds on a fresh connection."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="b1", sku="LAMP", qty=10))
    DroppedConnectionUnitOfWork.drops = 1
    with container.unit_of_work_class.override(providers.Object(DroppedConnectionUnitOfWork)):
        assert await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=1)) == "b1"
    assert DroppedConnectionUnitOfWork.drops == 0
    assert bus.stats.command_retries == 1
    async with container.unit_of_work() as uow:
        assert (await uow.products.get("LAMP")).batches[0].available_quantity == 9
