"""Products, batches and order lines: plain Python, no SQLAlchemy.

``examples/allocation/orm.py`` maps these classes classically (Cosmic
Python's style): the domain does not know it is persisted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from examples.allocation.domain.events import Allocated, Deallocated, OutOfStock
from keel import AggregateRoot, DomainError, NotFoundError


class InvalidSku(DomainError):
    """The sku is unknown."""

    code = "invalid_sku"


@dataclass(unsafe_hash=True)
class OrderLine:
    """A value object: two lines with the same order, sku and quantity are the same line."""

    orderid: str
    sku: str
    qty: int


class Batch:
    """Stock of one sku, identified by its reference."""

    def __init__(self, ref: str, sku: str, qty: int, eta: date | None = None) -> None:
        self.reference = ref
        self.sku = sku
        self.eta = eta
        self._purchased_quantity = qty
        self._allocations: set[OrderLine] = set()

    def __repr__(self) -> str:
        return f"<Batch {self.reference}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Batch) and other.reference == self.reference

    def __hash__(self) -> int:
        return hash(self.reference)

    def __lt__(self, other: Batch) -> bool:
        """Allocation order: stock in the warehouse (no eta) first, then the earliest eta."""
        if self.eta is None:
            return other.eta is not None
        return other.eta is not None and self.eta < other.eta

    @property
    def purchased_quantity(self) -> int:
        return self._purchased_quantity

    @property
    def allocated_quantity(self) -> int:
        return sum(line.qty for line in self._allocations)

    @property
    def available_quantity(self) -> int:
        return self._purchased_quantity - self.allocated_quantity

    @property
    def allocations(self) -> frozenset[OrderLine]:
        return frozenset(self._allocations)

    def can_allocate(self, line: OrderLine) -> bool:
        return self.sku == line.sku and self.available_quantity >= line.qty

    def allocate(self, line: OrderLine) -> None:
        if self.can_allocate(line):
            self._allocations.add(line)

    def deallocate_one(self) -> OrderLine:
        # The latest order id goes first: deterministic, so a replay frees the same line.
        line = max(self._allocations, key=lambda candidate: (candidate.orderid, candidate.qty))
        self._allocations.remove(line)
        return line


class Product(AggregateRoot):
    """The aggregate: every batch of one sku, changed as a whole.

    ``version`` starts at 1 (create a product with its first batches) and
    rises by one with every committed change to anything inside a stored
    product (a new batch, an allocation, a quantity change). keel does the
    bump: its unit of work treats the batches and their allocations as parts
    of the product (they hang off it through cascading relationships), so a
    change to a child alone still version-checks the product's row, and two
    concurrent allocations of one sku cannot both commit: the loser gets
    ``ConcurrencyError`` and the bus retries it. (Cosmic Python bumps
    ``version_number`` by hand in each method; there is no need here.)
    """

    def __init__(self, sku: str, batches: list[Batch] | None = None, version: int = 1) -> None:
        self.sku = sku
        self.batches = batches if batches is not None else []
        self.version = version

    def __repr__(self) -> str:
        return f"<Product {self.sku} v{self.version}>"

    def batch(self, ref: str) -> Batch:
        for batch in self.batches:
            if batch.reference == ref:
                return batch
        raise NotFoundError(entity="Batch", id=ref)

    def add_batch(self, batch: Batch) -> None:
        if any(existing.reference == batch.reference for existing in self.batches):
            raise DomainError(f"batch {batch.reference!r} already exists", ref=batch.reference)
        self.batches.append(batch)

    def allocate(self, line: OrderLine) -> str | None:
        """Allocate ``line`` to the best batch and return its reference (None: out of stock)."""
        batch = next((b for b in sorted(self.batches) if b.can_allocate(line)), None)
        if batch is None:
            self.record(OutOfStock(sku=line.sku))
            return None
        batch.allocate(line)
        self.record(Allocated(orderid=line.orderid, sku=line.sku, qty=line.qty, batchref=batch.reference))
        return batch.reference

    def change_batch_quantity(self, ref: str, qty: int) -> None:
        """Resize a batch; lines that no longer fit are deallocated (and recorded as such)."""
        batch = self.batch(ref)
        batch._purchased_quantity = qty
        while batch.available_quantity < 0:
            line = batch.deallocate_one()
            self.record(Deallocated(orderid=line.orderid, sku=line.sku, qty=line.qty))
