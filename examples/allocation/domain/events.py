"""Events: what happened to a product. Handled after the change committed."""

from __future__ import annotations

from keel import DomainEvent


class Allocated(DomainEvent):
    """An order line got stock from a batch."""

    orderid: str
    sku: str
    qty: int
    batchref: str


class Deallocated(DomainEvent):
    """An order line lost its stock (its batch shrank) and needs allocating again."""

    orderid: str
    sku: str
    qty: int


class OutOfStock(DomainEvent):
    """No batch of this sku could take an order line."""

    sku: str
