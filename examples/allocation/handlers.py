"""The service layer: one handler per command, any number per event.

Handlers get their parameters by name from the bus: ``uow`` is a fresh
:class:`AllocationUnitOfWork` per message, ``bus`` the bus itself (to send a
follow-up command), ``notifications`` the container's adapter.
"""

from __future__ import annotations

from examples.allocation.domain import commands
from examples.allocation.domain.commands import Allocate, ChangeBatchQuantity, CreateBatch
from examples.allocation.domain.events import Allocated, Deallocated, OutOfStock
from examples.allocation.domain.model import Batch, InvalidSku, OrderLine, Product
from examples.allocation.notifications import Notifications
from examples.allocation.unit_of_work import AllocationUnitOfWork
from examples.allocation.views import AllocationRow
from keel import ConcurrencyError, ConflictError, HandlerRegistry, MessageBus, NotFoundError

#: Every command in ``domain/commands.py`` must have a handler, or the bus refuses to start.
handlers = HandlerRegistry(commands=[commands])


# --- commands ----------------------------------------------------------------------


def duplicate_batch(ref: str) -> ConflictError:
    """The one answer to a batch reference in use, whichever product holds it."""
    return ConflictError(f"batch {ref!r} already exists", entity="Batch")


@handlers.register
async def add_batch(cmd: CreateBatch, uow: AllocationUnitOfWork) -> None:
    batch = Batch(cmd.ref, cmd.sku, cmd.qty, cmd.eta)
    async with uow:
        # References are unique across products: check them all, not only this sku's batches.
        try:
            await uow.products.get_by_batchref(cmd.ref)
        except NotFoundError:
            pass
        else:
            raise duplicate_batch(cmd.ref)
        product = await uow.products.get_or_none(cmd.sku)
        if product is None:
            uow.products.add(Product(cmd.sku, [batch]))  # a new product starts at version 1
        else:
            product.add_batch(batch)  # a change to a stored product: the next version
        try:
            await uow.commit()
        except ConflictError as exc:
            # A concurrent add_batch took the reference or created the product first:
            # retry, and the retry answers from what it committed (a duplicate, or a second batch).
            raise ConcurrencyError(f"batch {cmd.ref!r} or product {cmd.sku!r} was added concurrently") from exc


@handlers.register
async def allocate(cmd: Allocate, uow: AllocationUnitOfWork) -> str | None:
    """The reference of the batch the line went to, or None when out of stock."""
    line = OrderLine(cmd.orderid, cmd.sku, cmd.qty)
    async with uow:
        # A product's stock is a hot row: every order for the sku writes it. Locking it on
        # read (SELECT ... FOR UPDATE) makes concurrent allocations wait their turn instead
        # of all doing the work, all but one failing the version check at commit, and
        # retrying (docs/repositories.md, "When to lock"). The version check stays on.
        product = await uow.products.get_or_none(line.sku, for_update=True)
        if product is None:
            raise InvalidSku(f"Invalid sku {line.sku}", sku=line.sku)
        batchref = product.allocate(line)
        await uow.commit()
    return batchref


@handlers.register
async def change_batch_quantity(cmd: ChangeBatchQuantity, uow: AllocationUnitOfWork) -> None:
    async with uow:
        product = await uow.products.get_by_batchref(cmd.ref)
        product.change_batch_quantity(cmd.ref, cmd.qty)
        await uow.commit()


# --- events (registration order is call order) ------------------------------------


async def follow_allocation(orderid: str, sku: str, uow: AllocationUnitOfWork) -> None:
    """Make ``allocations_view``'s row for (orderid, sku) say what the product holds now.

    Handlers of one product's events run in several processes after their
    commits, in no guaranteed order: an ``Allocated`` to batch 1 can be handled
    after the ``Deallocated`` and re-``Allocated`` to batch 2 that followed it.
    Copying the event's batch would then leave batch 1 in the view for good;
    reading the write model under the product's row lock leaves the truth.
    """
    async with uow:
        batchref = await uow.products.allocated_batchref(orderid, sku)
        row = await uow.allocations_view.get_or_none((orderid, sku))
        if batchref is None:
            if row is not None:
                await uow.allocations_view.hard_delete(row)
        elif row is None:
            uow.allocations_view.add(AllocationRow(orderid, sku, batchref))
        else:
            row.batchref = batchref
        await uow.commit()


@handlers.register
async def add_allocation_to_read_model(event: Allocated, uow: AllocationUnitOfWork) -> None:
    await follow_allocation(event.orderid, event.sku, uow)


@handlers.register
async def remove_allocation_from_read_model(event: Deallocated, uow: AllocationUnitOfWork) -> None:
    await follow_allocation(event.orderid, event.sku, uow)


@handlers.register
async def reallocate(event: Deallocated, bus: MessageBus) -> None:
    """A deallocated line is allocated again (to another batch, if one has room)."""
    await bus.handle(Allocate(orderid=event.orderid, sku=event.sku, qty=event.qty))


@handlers.register
async def send_out_of_stock_notification(event: OutOfStock, notifications: Notifications) -> None:
    await notifications.send("stock@example.com", f"Out of stock for {event.sku}")
