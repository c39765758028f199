"""The allocation service through its container's bus, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate, ChangeBatchQuantity, CreateBatch
from examples.allocation.domain.events import Allocated
from examples.allocation.handlers import handlers
from examples.allocation.notifications import RecordingNotifications
from examples.allocation.orm import allocations
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from examples.allocation import views
from keel import HandlerRegistry, MessageBus


async def allocations_of(container: AllocationContainer, orderid: str) -> list[dict[str, str]]:
    return await views.allocations(orderid, container.unit_of_work())


async def test_a_new_product_is_stored_at_version_1_and_each_later_batch_adds_one(
    container: AllocationContainer,
) -> None:
    """Created with its first batch the product is version 1, in memory and in its row; a second batch: 2."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="b1", sku="LAMP", qty=10))
    async with container.unit_of_work() as uow:
        assert (await uow.products.get("LAMP")).version == 1
    await bus.handle(CreateBatch(ref="b2", sku="LAMP", qty=10))
    async with container.unit_of_work() as uow:
        assert (await uow.products.get("LAMP")).version == 2


async def test_the_change_quantity_cascade_reallocates_end_to_end(container: AllocationContainer) -> None:
    """ChangeBatchQuantity -> Deallocated -> Allocate: lines move to the next batch; the view follows."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="warehouse", sku="SOFA", qty=10))
    await bus.handle(CreateBatch(ref="shipment", sku="SOFA", qty=10, eta=date(2030, 1, 1)))
    assert await bus.handle(Allocate(orderid="o1", sku="SOFA", qty=4)) == "warehouse"
    assert await bus.handle(Allocate(orderid="o2", sku="SOFA", qty=4)) == "warehouse"

    await bus.handle(ChangeBatchQuantity(ref="warehouse", qty=5))

    assert await allocations_of(container, "o1") == [{"sku": "SOFA", "batchref": "warehouse"}]
    assert await allocations_of(container, "o2") == [{"sku": "SOFA", "batchref": "shipment"}]
    async with container.unit_of_work() as uow:
        warehouse, shipment = (await uow.products.get("SOFA")).batches
    assert (warehouse.available_quantity, shipment.available_quantity) == (1, 6)
    assert bus.stats.event_handler_failures == 0


async def test_a_failing_event_handler_neither_undoes_the_command_nor_stops_the_others(
    container: AllocationContainer, notifications: RecordingNotifications
) -> None:
    """The allocation stays committed and the read-model handler still runs after a broken one."""

    async def broken_publisher(event: Allocated) -> None:
        raise ConnectionError("message broker unreachable")

    registry = HandlerRegistry()
    registry.add(Allocated, broken_publisher)  # first in line, before the read-model handler
    registry.include(handlers)
    bus = MessageBus(
        container.unit_of_work,
        registry=registry,
        dependencies={"notifications": notifications},
        command_retry=container.command_retry(),
        event_retry=container.event_retry(),
    )
    await bus.handle(CreateBatch(ref="b1", sku="CHAIR", qty=10))
    assert await bus.handle(Allocate(orderid="o1", sku="CHAIR", qty=2)) == "b1"

    assert bus.stats.event_handler_failures == 1
    assert await allocations_of(container, "o1") == [{"sku": "CHAIR", "batchref": "b1"}]
    async with container.unit_of_work() as uow:
        assert (await uow.products.get("CHAIR")).batches[0].available_quantity == 8


async def test_out_of_stock_notifies(container: AllocationContainer, notifications: RecordingNotifications) -> None:
    """The notifications dependency comes from the container."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="b1", sku="RUG", qty=1))
    assert await bus.handle(Allocate(orderid="o1", sku="RUG", qty=2)) is None
    assert notifications.sent == [("stock@example.com", "Out of stock for RUG")]


@pytest.mark.slow
async def test_concurrent_allocations_of_one_product_take_turns_on_its_row_lock(
    container: AllocationContainer, engine: AsyncEngine
) -> None:
    """50 concurrent Allocate commands on a batch of 20: exactly 20 allocated, queued on the product's lock."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="b1", sku="HOT-ITEM", qty=20))
    start = asyncio.Event()

    async def allocate(n: int) -> str | None:
        await start.wait()  # release every task at once
        result: str | None = await bus.handle(Allocate(orderid=f"order-{n:02}", sku="HOT-ITEM", qty=1))
        return result

    tasks = [asyncio.create_task(allocate(n)) for n in range(50)]
    await asyncio.sleep(0)  # let every task reach start.wait()
    start.set()
    async with asyncio.timeout(120):
        results = await asyncio.gather(*tasks)

    assert results.count("b1") == 20
    assert results.count(None) == 30
    # allocate reads the product with for_update=True: the others wait for it instead of conflicting and retrying.
    assert bus.stats.command_retries == 0
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(allocations))).scalar_one() == 20
    async with container.unit_of_work() as uow:
        product = await uow.products.get("HOT-ITEM")
    assert product.batches[0].available_quantity == 0
    assert product.version == 21  # 1 when inserted, +1 per allocation
