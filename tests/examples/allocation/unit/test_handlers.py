"""The allocation handlers through the real bus, on keel's in-memory unit of work."""

from __future__ import annotations

from datetime import date

import pytest
from examples.allocation.domain.commands import Allocate, ChangeBatchQuantity, CreateBatch
from examples.allocation.domain.events import Allocated, Deallocated
from examples.allocation.domain.model import Batch, InvalidSku, OrderLine, Product
from examples.allocation.handlers import add_allocation_to_read_model, handlers, remove_allocation_from_read_model
from examples.allocation.notifications import RecordingNotifications
from examples.allocation.repositories import ProductRepository
from examples.allocation.unit_of_work import AllocationUnitOfWork

from examples.allocation import (
    orm,  # noqa: F401  (the in-memory twin reads the mapping)
    views,
)
from keel import BusConfigurationError, ConcurrencyError, MessageBus, NotFoundError
from keel.testing import InMemoryRepository, InMemoryStore, InMemoryUnitOfWork


class FakeProductRepository(InMemoryRepository[Product], ProductRepository):
    """The twin's storage with a join-free ``get_by_batchref`` (the twin refuses joins)."""

    async def get_by_batchref(self, ref: str) -> Product:
        for product in await self.list():
            if any(batch.reference == ref for batch in product.batches):
                return product
        raise NotFoundError(entity="Batch", id=ref)

    async def allocated_batchref(self, orderid: str, sku: str) -> str | None:
        product = await self.get_or_none(sku)
        batches = product.batches if product is not None else []
        held = (b for b in batches if any(line.orderid == orderid for line in b.allocations))
        return next((b.reference for b in held), None)


class FakeUnitOfWork(InMemoryUnitOfWork, AllocationUnitOfWork):
    """The application's unit of work on the twin: handlers typed ``uow: AllocationUnitOfWork`` accept it."""

    products: FakeProductRepository


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def notifications() -> RecordingNotifications:
    return RecordingNotifications()


@pytest.fixture
def bus(store: InMemoryStore, notifications: RecordingNotifications) -> MessageBus:
    return MessageBus(lambda: FakeUnitOfWork(store), registry=handlers, dependencies={"notifications": notifications})


async def product(store: InMemoryStore, sku: str) -> Product:
    async with FakeUnitOfWork(store) as uow:
        return await uow.products.get(sku)


async def test_a_new_product_starts_at_version_1(bus: MessageBus, store: InMemoryStore) -> None:
    """The product created together with its first batch is stored at version 1, not 2."""
    await bus.handle(CreateBatch(ref="b1", sku="LAMP", qty=10))
    assert (await product(store, "LAMP")).version == 1
    await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=1))
    assert (await product(store, "LAMP")).version == 2  # one per change, as on SQL


async def test_add_batch_creates_the_product_then_adds_to_it(bus: MessageBus, store: InMemoryStore) -> None:
    """The first batch of a sku creates its product; later ones join it."""
    await bus.handle(CreateBatch(ref="b1", sku="CRUNCHY-ARMCHAIR", qty=100))
    await bus.handle(CreateBatch(ref="b2", sku="CRUNCHY-ARMCHAIR", qty=99, eta=date(2030, 1, 1)))
    assert [b.reference for b in (await product(store, "CRUNCHY-ARMCHAIR")).batches] == ["b1", "b2"]


async def test_allocate_returns_the_batch_and_updates_the_read_model(bus: MessageBus, store: InMemoryStore) -> None:
    """The command's result is the batch; the Allocated handler fills allocations_view."""
    await bus.handle(CreateBatch(ref="batch1", sku="COMPLICATED-LAMP", qty=100))
    assert await bus.handle(Allocate(orderid="o1", sku="COMPLICATED-LAMP", qty=10)) == "batch1"
    assert await views.allocations("o1", FakeUnitOfWork(store)) == [{"sku": "COMPLICATED-LAMP", "batchref": "batch1"}]


async def test_a_late_allocated_event_does_not_overwrite_the_view_with_its_old_batch(
    bus: MessageBus, store: InMemoryStore
) -> None:
    """An Allocated handled after the line moved on: the view keeps the batch that holds the line now."""
    await bus.handle(CreateBatch(ref="first", sku="LAMP", qty=10))
    await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=10))
    await bus.handle(CreateBatch(ref="second", sku="LAMP", qty=10))
    await bus.handle(ChangeBatchQuantity(ref="first", qty=5))  # o1 is deallocated, then reallocated to "second"
    assert await views.allocations("o1", FakeUnitOfWork(store)) == [{"sku": "LAMP", "batchref": "second"}]
    # Another process handles the first Allocated only now.
    await add_allocation_to_read_model(
        Allocated(orderid="o1", sku="LAMP", qty=10, batchref="first"), FakeUnitOfWork(store)
    )
    assert await views.allocations("o1", FakeUnitOfWork(store)) == [{"sku": "LAMP", "batchref": "second"}]
    # And a late Deallocated of the old batch does not remove the row of the new one.
    await remove_allocation_from_read_model(Deallocated(orderid="o1", sku="LAMP", qty=10), FakeUnitOfWork(store))
    assert await views.allocations("o1", FakeUnitOfWork(store)) == [{"sku": "LAMP", "batchref": "second"}]


async def test_allocating_an_unknown_sku_is_invalid_sku(bus: MessageBus) -> None:
    """Cosmic Python's message, as a keel domain error."""
    await bus.handle(CreateBatch(ref="b1", sku="AREALSKU", qty=100))
    with pytest.raises(InvalidSku, match="Invalid sku NONEXISTENTSKU"):
        await bus.handle(Allocate(orderid="o1", sku="NONEXISTENTSKU", qty=10))


async def test_out_of_stock_sends_a_notification(bus: MessageBus, notifications: RecordingNotifications) -> None:
    """OutOfStock reaches the notifications dependency."""
    await bus.handle(CreateBatch(ref="b1", sku="POPULAR-CURTAINS", qty=9))
    assert await bus.handle(Allocate(orderid="o1", sku="POPULAR-CURTAINS", qty=10)) is None
    assert notifications.sent == [("stock@example.com", "Out of stock for POPULAR-CURTAINS")]


async def test_shrinking_a_batch_reallocates_its_lines_elsewhere(bus: MessageBus, store: InMemoryStore) -> None:
    """ChangeBatchQuantity -> Deallocated -> Allocate, and the read model follows."""
    await bus.handle(CreateBatch(ref="b1", sku="INDIFFERENT-TABLE", qty=50))
    await bus.handle(CreateBatch(ref="b2", sku="INDIFFERENT-TABLE", qty=50, eta=date(2030, 1, 1)))
    await bus.handle(Allocate(orderid="o1", sku="INDIFFERENT-TABLE", qty=20))
    await bus.handle(Allocate(orderid="o2", sku="INDIFFERENT-TABLE", qty=20))
    await bus.handle(ChangeBatchQuantity(ref="b1", qty=25))
    table = await product(store, "INDIFFERENT-TABLE")
    assert [b.available_quantity for b in table.batches] == [5, 30]
    assert await views.allocations("o2", FakeUnitOfWork(store)) == [{"sku": "INDIFFERENT-TABLE", "batchref": "b2"}]
    assert await views.allocations("o1", FakeUnitOfWork(store)) == [{"sku": "INDIFFERENT-TABLE", "batchref": "b1"}]


async def test_changing_an_unknown_batch_is_not_found(bus: MessageBus) -> None:
    """The error names the batch reference."""
    with pytest.raises(NotFoundError, match="'missing'"):
        await bus.handle(ChangeBatchQuantity(ref="missing", qty=1))


def test_the_bus_refuses_to_start_without_the_notifications_dependency(store: InMemoryStore) -> None:
    """The registry's handlers are checked when the bus is built."""
    with pytest.raises(BusConfigurationError, match=r"send_out_of_stock_notification.*'notifications'"):
        MessageBus(lambda: FakeUnitOfWork(store), registry=handlers)


async def test_concurrent_allocations_of_the_last_stock_cannot_both_commit_on_the_twin(store: InMemoryStore) -> None:
    """The in-memory unit of work catches the race as SQL does: one commits, the other gets ConcurrencyError."""
    async with FakeUnitOfWork(store) as uow:
        uow.products.add(Product("LAMP", [Batch("b1", "LAMP", 10)]))
        await uow.commit()
    first, second = FakeUnitOfWork(store), FakeUnitOfWork(store)
    async with first, second:
        mine = await first.products.get("LAMP")
        theirs = await second.products.get("LAMP")
        mine.allocate(OrderLine("o1", "LAMP", 10))
        theirs.allocate(OrderLine("o2", "LAMP", 10))
        await first.commit()
        with pytest.raises(ConcurrencyError):
            await second.commit()
    stored = await product(store, "LAMP")
    assert stored.version == 2
    assert stored.batches[0].allocations == {OrderLine("o1", "LAMP", 10)}
