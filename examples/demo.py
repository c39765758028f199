"""The README's demo: Cosmic Python's allocation service on keel, scripted, on SQLite.

    python -m examples.demo              # or ./scripts/demo

Migrates a fresh SQLite file, adds batches, allocates through the message
bus, shrinks a batch to show the ChangeBatchQuantity -> Deallocated ->
Allocate cascade, runs out of stock, and races two allocations of one
product so that one of them hits a concurrency conflict that the bus
catches and retries. Needs no services.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar

from dependency_injector import providers

from examples.allocation import orm, views
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate, ChangeBatchQuantity, CreateBatch
from examples.allocation.domain.events import Allocated, Deallocated, OutOfStock
from examples.allocation.handlers import handlers
from examples.allocation.unit_of_work import AllocationUnitOfWork
from keel import Command, DomainEvent, HandlerRegistry, MessageBus
from keel.config import KeelSettings
from keel.container import running
from keel.infrastructure.database import migrations

ROOT = Path(__file__).resolve().parents[1]
ALEMBIC_INI = ROOT / "alembic.ini"
SKU = "LAMP"
IN_A_WEEK = date.today() + timedelta(days=7)


def say(text: str = "", indent: int = 0) -> None:
    print(" " * indent + text, flush=True)


# --- what the demo adds to the service: narration and a staged race ------------------------


class ConsoleNotifications:
    """Prints notifications instead of sending them."""

    async def send(self, destination: str, message: str) -> None:
        say(f"notification to {destination}: {message}", 6)


async def narrate(event: DomainEvent) -> None:
    """Says what happened; registered first for each event, so it speaks before the cascade runs."""
    if isinstance(event, Allocated):
        say(f"event Allocated: {event.orderid} {event.sku} x{event.qty} -> {event.batchref}", 6)
    elif isinstance(event, Deallocated):
        say(f"event Deallocated: {event.orderid} {event.sku} x{event.qty}", 6)
    elif isinstance(event, OutOfStock):
        say(f"event OutOfStock: {event.sku}", 6)


class RacingUnitOfWork(AllocationUnitOfWork):
    """Holds the first two commits at a barrier, so that both racers have read the product first."""

    barrier: ClassVar[asyncio.Barrier | None] = None
    arrived: ClassVar[int] = 0

    async def commit(self) -> None:
        barrier = RacingUnitOfWork.barrier
        if barrier is not None and RacingUnitOfWork.arrived < barrier.parties:
            RacingUnitOfWork.arrived += 1
            async with asyncio.timeout(10):  # a racer that failed early must not hang the demo
                await barrier.wait()
        await super().commit()


class PrintRetries(logging.Handler):
    """Shows the bus's retry log lines (logger ``keel.messagebus``) as part of the story."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "keel_attempt", None) is not None:
            say(f"retry: {record.getMessage()}", 6)


def demo_handlers() -> HandlerRegistry:
    """The service's handlers, with the narrator first in line for every event."""
    registry = HandlerRegistry()
    for event in (Allocated, Deallocated, OutOfStock):
        registry.add(event, narrate)
    registry.include(handlers)
    return registry


class DemoContainer(AllocationContainer):
    notifications = providers.Singleton(ConsoleNotifications)
    handlers = providers.Object(demo_handlers())


# --- the scenario ----------------------------------------------------------------------------


def migrate(url: str) -> None:
    if ALEMBIC_INI.is_file():
        migrations.upgrade(url, config_path=ALEMBIC_INI)
        say("alembic upgrade heads: keel's branch and the allocation example's branch", 3)
    else:  # a checkout without the Alembic environment
        asyncio.run(_create_all(url))
        say("created the tables from the ORM metadata (no alembic.ini found)", 3)


async def _create_all(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from keel.orm import keel_metadata

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(orm.metadata.create_all)
            await conn.run_sync(keel_metadata.create_all)  # the bus records each command it handles
    finally:
        await engine.dispose()


async def send(bus: MessageBus, command: Command) -> Any:
    fields = ", ".join(f"{name}={value!r}" for name, value in command.model_dump(mode="json").items())
    say(f"> {type(command).__name__}({fields})", 3)
    result = await bus.handle(command)
    if isinstance(command, Allocate):
        say(f"= {result if result is not None else 'not allocated (out of stock)'}", 3)
    return result


async def show_allocations(container: DemoContainer, *orderids: str) -> None:
    for orderid in orderids:
        rows = await views.allocations(orderid, container.unit_of_work())
        placed = ", ".join(f"{row['sku']} -> {row['batchref']}" for row in rows) or "nothing"
        say(f"allocations_view[{orderid}]: {placed}", 3)


async def scenario(url: str) -> None:
    container = DemoContainer()
    container.settings.override(providers.Object(KeelSettings(database={"url": url})))
    async with running(container):
        bus = container.bus()

        say("\n2. Add two batches: one in the warehouse, one arriving in a week")
        await send(bus, CreateBatch(ref="WAREHOUSE-1", sku=SKU, qty=10))
        await send(bus, CreateBatch(ref="SHIPMENT-1", sku=SKU, qty=10, eta=IN_A_WEEK))

        say("\n3. Allocate: warehouse stock goes first")
        await send(bus, Allocate(orderid="order-1", sku=SKU, qty=3))
        await send(bus, Allocate(orderid="order-2", sku=SKU, qty=5))

        say("\n4. The warehouse batch turns out smaller: ChangeBatchQuantity -> Deallocated -> Allocate")
        await send(bus, ChangeBatchQuantity(ref="WAREHOUSE-1", qty=4))
        await show_allocations(container, "order-1", "order-2")

        say("\n5. Out of stock")
        await send(bus, Allocate(orderid="order-3", sku=SKU, qty=50))

        say("\n6. Two restocks of the same product at the same moment")
        await race(container, bus)

        stats = bus.stats
        say(
            f"\nDone: {stats.commands_handled} commands, {stats.events_handled} events, "
            f"{stats.command_retries} retried conflict(s), {stats.event_handler_failures} failed event handlers."
        )


async def race(container: DemoContainer, bus: MessageBus) -> None:
    """Both commands read version N of the product; the first commit wins, the second retries.

    (Allocations of one sku take turns on the product's row lock instead, see
    ``handlers.allocate``; a restock reads the product without one, so two of
    them at once show the optimistic check at work.)
    """
    RacingUnitOfWork.barrier, RacingUnitOfWork.arrived = asyncio.Barrier(2), 0
    retries_before = bus.stats.command_retries
    with container.unit_of_work_class.override(providers.Object(RacingUnitOfWork)):
        await asyncio.gather(
            send(bus, ChangeBatchQuantity(ref="WAREHOUSE-1", qty=20)),
            send(bus, ChangeBatchQuantity(ref="SHIPMENT-1", qty=30)),
        )
    retried = bus.stats.command_retries - retries_before
    async with container.unit_of_work() as uow:
        product = await uow.products.get(SKU)
    sizes = ", ".join(f"{batch.reference}={batch.purchased_quantity}" for batch in product.batches)
    say(f"both restocks applied ({sizes}); conflicts caught and retried: {retried}", 3)
    say(f"{SKU} is at version {product.version}; every change to the product moved it by one", 3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, help="SQLite file to use (default: a fresh temporary one)")
    args = parser.parse_args(argv)

    retries = logging.getLogger("keel.messagebus")
    retries.addHandler(PrintRetries(logging.WARNING))
    retries.propagate = False

    with tempfile.TemporaryDirectory(prefix="keel-demo-") as scratch:
        path: Path = args.database or Path(scratch) / "demo.db"
        url = f"sqlite+aiosqlite:///{path}"
        say(f"keel demo: Cosmic Python's allocation service on SQLite ({path})")
        say("\n1. Migrate")
        migrate(url)
        asyncio.run(scenario(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
