"""The allocation domain on its own: batches, products, the events they record."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from examples.allocation.domain.events import Allocated, Deallocated, OutOfStock
from examples.allocation.domain.model import Batch, OrderLine, Product

from keel import DomainError, NotFoundError

TODAY = date(2030, 1, 1)
TOMORROW = TODAY + timedelta(days=1)
LATER = TODAY + timedelta(days=10)


def batch_and_line(sku: str, batch_qty: int, line_qty: int) -> tuple[Batch, OrderLine]:
    return Batch("batch-001", sku, batch_qty, eta=TODAY), OrderLine("order-123", sku, line_qty)


def test_allocating_to_a_batch_reduces_the_available_quantity() -> None:
    """An allocated line uses up stock."""
    batch, line = batch_and_line("SMALL-TABLE", 20, 2)
    batch.allocate(line)
    assert batch.available_quantity == 18


@pytest.mark.parametrize(("batch_qty", "line_qty", "expected"), [(20, 2, True), (2, 20, False), (2, 2, True)])
def test_a_batch_can_allocate_what_it_has(batch_qty: int, line_qty: int, expected: bool) -> None:
    """A line fits when the batch has at least its quantity."""
    batch, line = batch_and_line("ELEGANT-LAMP", batch_qty, line_qty)
    assert batch.can_allocate(line) is expected


def test_a_batch_cannot_allocate_another_sku() -> None:
    """Stock of one sku never serves another."""
    batch = Batch("batch-001", "UNCOMFORTABLE-CHAIR", 100, eta=None)
    assert not batch.can_allocate(OrderLine("order-123", "EXPENSIVE-TOASTER", 10))


def test_allocating_the_same_line_twice_is_idempotent() -> None:
    """Order lines are values: the same line counts once."""
    batch, line = batch_and_line("ANGULAR-DESK", 20, 2)
    batch.allocate(line)
    batch.allocate(line)
    assert batch.available_quantity == 18


def test_warehouse_stock_is_preferred_to_shipments() -> None:
    """A batch with no eta (in the warehouse) goes first."""
    in_stock = Batch("in-stock", "RETRO-CLOCK", 100, eta=None)
    shipment = Batch("shipment", "RETRO-CLOCK", 100, eta=TOMORROW)
    product = Product("RETRO-CLOCK", [shipment, in_stock])
    assert product.allocate(OrderLine("oref", "RETRO-CLOCK", 10)) == "in-stock"
    assert (in_stock.available_quantity, shipment.available_quantity) == (90, 100)


def test_earlier_shipments_are_preferred() -> None:
    """Among shipments the earliest eta wins."""
    earliest = Batch("speedy", "MINIMALIST-SPOON", 100, eta=TODAY)
    medium = Batch("normal", "MINIMALIST-SPOON", 100, eta=TOMORROW)
    latest = Batch("slow", "MINIMALIST-SPOON", 100, eta=LATER)
    product = Product("MINIMALIST-SPOON", [latest, medium, earliest])
    assert product.allocate(OrderLine("order1", "MINIMALIST-SPOON", 10)) == "speedy"


def test_allocating_records_allocated_and_leaves_the_version_to_keel() -> None:
    """The change is an event; the domain does not bump the version (keel's unit of work does, on commit)."""
    product = Product("LAMP", [Batch("b1", "LAMP", 10)])
    product.allocate(OrderLine("o1", "LAMP", 3))
    assert product.version == 1
    assert [(type(e), getattr(e, "batchref", None)) for e in product.pending_events] == [(Allocated, "b1")]


def test_no_stock_records_out_of_stock_and_changes_nothing() -> None:
    """Out of stock is an event, not an error, and leaves the version alone."""
    product = Product("LAMP", [Batch("b1", "LAMP", 10)])
    assert product.allocate(OrderLine("o1", "LAMP", 11)) is None
    assert product.version == 1
    assert product.pending_events == [OutOfStock(sku="LAMP", event_id=product.pending_events[0].event_id,
                                                 occurred_at=product.pending_events[0].occurred_at)]  # fmt: skip


def test_shrinking_a_batch_deallocates_lines_that_no_longer_fit() -> None:
    """Lines are freed (latest order id first) until the batch fits, each recorded as Deallocated."""
    batch = Batch("b1", "LAMP", 10)
    product = Product("LAMP", [batch])
    product.allocate(OrderLine("o1", "LAMP", 4))
    product.allocate(OrderLine("o2", "LAMP", 4))
    product.pull_events()
    product.change_batch_quantity("b1", 5)
    assert batch.available_quantity == 1
    assert [(type(e), getattr(e, "orderid", None)) for e in product.pending_events] == [(Deallocated, "o2")]


def test_changing_an_unknown_batch_is_not_found() -> None:
    """The error names the batch."""
    with pytest.raises(NotFoundError, match="'nope'"):
        Product("LAMP").change_batch_quantity("nope", 1)


def test_a_batch_reference_is_unique_within_its_product() -> None:
    """Adding a batch twice is a domain error."""
    product = Product("LAMP", [Batch("b1", "LAMP", 10)])
    with pytest.raises(DomainError, match="already exists"):
        product.add_batch(Batch("b1", "LAMP", 5))
