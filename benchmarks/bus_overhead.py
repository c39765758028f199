"""What the message bus costs over hand-written SQLAlchemy for the Allocate use case.

Two pairs, each interleaved round by round (and alternating which goes first)
so drift in the machine's speed hits both sides alike:

* ``allocate``: the command alone. Through keel: ``bus.handle(Allocate(...))``
  from the allocation example's container (command validation, injection, a
  fresh unit of work, repository, commit, retry wrapper, event collection).
  By hand: one function with an ``AsyncSession`` doing the same load,
  ``product.allocate(line)`` and commit.
* ``allocate + read model``: also the ``Allocated`` event's handler, which
  updates ``allocations_view`` in its own transaction after the commit. By
  hand: the same two transactions, written inline.

The keel side runs on keel's engine and the container's session factory; the
hand-written side on a plain ``create_async_engine`` + ``async_sessionmaker``
(same pool settings), so it pays none of keel's session listeners, and bumps
the product's version itself (as Cosmic Python's hand-written code does),
where keel's aggregate-wide locking does it for the bus, and writes the
``Allocated`` event's outbox row (topic ``line_allocated``, with the relays'
NOTIFY) in the same transaction, as the example's routing has keel do. Both
use the same mapping and domain code. Allocations are cleared between rounds (untimed), so
every round starts from the same data.

The container records every command in ``keel_processed_commands``
(exactly-once commands: one INSERT more per command). ``allocate`` is measured
twice, with that record and without it (``commit_participants`` overridden
with an empty list), so both figures are visible.

    python -m benchmarks.bus_overhead            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.bus_overhead --quick    # a short smoke run

``KEEL_BENCH_DATABASE_URL`` points it elsewhere; the database is created if absent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate
from examples.allocation.domain.events import Allocated
from examples.allocation.domain.model import Batch, InvalidSku, OrderLine, Product
from examples.allocation.handlers import allocate
from examples.allocation.notifications import RecordingNotifications
from examples.allocation.views import AllocationRow
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from benchmarks.uow_overhead import ensure_database, keel_engine, plain_engine, plain_session_factory
from examples.allocation import orm
from keel import MessageBus
from keel.config import KeelSettings
from keel.container import running
from keel.infrastructure.database import create_session_factory
from keel.orm import keel_metadata

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"
SKUS = 200
TABLES = [orm.products, orm.batches, orm.order_lines, orm.allocations, orm.allocations_view]

Operation = Callable[[int], Awaitable[None]]


def sku_of(n: int) -> str:
    return f"BENCH-{n % SKUS:04}"


# --- the hand-written side --------------------------------------------------------------


#: The outbox row of a ``line_allocated`` message and the relays' wake-up, in one statement (as keel writes it).
OUTBOX_INSERT = (
    "WITH written AS (INSERT INTO keel_outbox (id, topic, ordering_key, payload, attributes, status, created_at, "
    "available_at, attempts) VALUES ($1, $2, $3, $4, $5::json, $6, $7, $8, $9)) SELECT pg_notify($10, '')"
)


def by_hand(session_factory: async_sessionmaker[AsyncSession], *, read_model: bool) -> Operation:
    async def operation(n: int) -> None:
        orderid, sku = f"order-{n}", sku_of(n)
        async with session_factory() as session, session.begin():
            product = await session.get(Product, sku)
            if product is None:
                raise InvalidSku(f"Invalid sku {sku}")
            batchref = product.allocate(OrderLine(orderid, sku, 1))
            # The aggregate root's version bump (and so its version check), which keel's
            # flush listener does for the bus: Cosmic Python's hand-written `version_number += 1`.
            product.version += 1
            # The Allocated event leaves through the outbox, in this transaction, as the
            # example's routing makes keel do (topic line_allocated, ordered per sku).
            for event in product.pull_events():
                if isinstance(event, Allocated):
                    await write_outbox_row(session, event)
        if read_model and batchref is not None:
            async with session_factory() as session, session.begin():
                row = await session.get(AllocationRow, (orderid, sku))
                if row is None:
                    session.add(AllocationRow(orderid, sku, batchref))
                else:
                    row.batchref = batchref

    return operation


async def write_outbox_row(session: AsyncSession, event: Allocated) -> None:
    """What a hand-written transactional outbox writes for one ``Allocated`` (PostgreSQL)."""
    event_id, now = str(event.event_id), datetime.now(UTC)
    body = {"orderid": event.orderid, "sku": event.sku, "qty": event.qty, "batchref": event.batchref}
    attributes = {"event_type": "Allocated", "event_id": event_id, "schema_version": "1", "correlation_id": event_id}
    connection = await session.connection()
    await connection.exec_driver_sql(
        OUTBOX_INSERT,
        (
            event_id,
            "line_allocated",
            event.sku,
            json.dumps(body, separators=(",", ":")),
            json.dumps(attributes, separators=(",", ":")),
            "pending",
            now,
            now,
            0,
            "keel_outbox",
        ),
    )


# --- the keel side ------------------------------------------------------------------------


def through_bus(bus: MessageBus) -> Operation:
    async def operation(n: int) -> None:
        await bus.handle(Allocate(orderid=f"order-{n}", sku=sku_of(n), qty=1))

    return operation


# --- harness ------------------------------------------------------------------------------


async def prepare(engine: AsyncEngine) -> None:
    """The example's tables (created if absent), emptied, with one large batch per sku."""
    async with engine.begin() as conn:
        await conn.run_sync(orm.metadata.create_all, tables=TABLES)
        await conn.run_sync(keel_metadata.create_all)  # the container's units of work record commands
    await clear(engine, everything=True)
    session_factory = create_session_factory(engine)
    async with session_factory() as session, session.begin():
        session.add_all(Product(sku_of(n), [Batch(f"batch-{n}", sku_of(n), 10**9)]) for n in range(SKUS))


async def clear(engine: AsyncEngine, *, everything: bool = False) -> None:
    tables = TABLES if everything else [orm.allocations, orm.order_lines, orm.allocations_view]
    tables = [*tables, *keel_metadata.sorted_tables]  # every round records its commands afresh
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)} CASCADE"))
        else:
            for table in reversed(tables):
                await conn.execute(table.delete())


async def timed(operation: Operation, start: int, ops: int) -> tuple[float, float]:
    """(operations per second, CPU milliseconds per operation) over ``ops`` sequential operations.

    The CPU time is this process's only: it leaves out the database server and
    neighbours on a shared machine, so it shows keel's own cost more steadily.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(start, start + ops):
        await operation(n)
    return ops / (time.perf_counter() - wall), (time.process_time() - cpu) * 1000 / ops


def container_for(engine: AsyncEngine, *, record_commands: bool = True) -> AllocationContainer:
    """The allocation example's container on ``engine``; without the exactly-once record if asked."""
    container = AllocationContainer()
    container.settings.override(providers.Object(KeelSettings()))
    container.engine.override(providers.Object(engine))
    container.notifications.override(providers.Object(RecordingNotifications()))
    if not record_commands:
        container.commit_participants.override(providers.List())
    return container


async def run(url: str, rounds: int, ops: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    await ensure_database(url)
    engine, plain = keel_engine(url), plain_engine(url)
    try:
        await prepare(engine)
        session_factory = plain_session_factory(plain)
        full, bare = container_for(engine), container_for(engine, record_commands=False)
        async with running(full), running(bare):
            pairs: dict[str, dict[str, Operation]] = {
                "allocate": {
                    "hand-written AsyncSession": by_hand(session_factory, read_model=False),
                    "keel bus.handle(Allocate)": through_bus(
                        MessageBus(full.unit_of_work, command_handlers={Allocate: allocate})
                    ),
                },
                "allocate, no processed-commands record": {
                    "hand-written AsyncSession": by_hand(session_factory, read_model=False),
                    "keel bus.handle(Allocate)": through_bus(
                        MessageBus(bare.unit_of_work, command_handlers={Allocate: allocate})
                    ),
                },
                "allocate + read model": {
                    "hand-written AsyncSession": by_hand(session_factory, read_model=True),
                    "keel bus.handle(Allocate)": through_bus(full.bus()),
                },
            }
            counter = 0
            for variants in pairs.values():  # warm up pools, caches, the statement cache
                for operation in variants.values():
                    await timed(operation, counter, max(ops // 5, 20))
                    counter += ops
            await clear(engine)
            results: dict[str, dict[str, list[tuple[float, float]]]] = {
                pair: {name: [] for name in variants} for pair, variants in pairs.items()
            }
            for round_ in range(rounds):
                for pair, variants in pairs.items():
                    names = list(variants)
                    for name in names if round_ % 2 == 0 else reversed(names):
                        results[pair][name].append(await timed(variants[name], counter, ops))
                        counter += ops
                        await clear(engine)
        return results
    finally:
        await engine.dispose()
        await plain.dispose()


#: The sides ``benchmarks.instructions`` counts, baseline first: the ``allocate`` command alone.
SIDES = ("hand-written", "keel", "keel, no processed-commands record")


async def run_side(url: str, side: str, warmup: int, ops: int) -> None:
    """Run ``warmup`` then ``ops`` ``allocate`` commands of one side alone (for ``benchmarks.instructions``)."""
    await ensure_database(url)
    engine = keel_engine(url)
    plain = plain_engine(url)
    try:
        await prepare(engine)
        if side == "hand-written":
            operation = by_hand(plain_session_factory(plain), read_model=False)
            await timed(operation, 0, warmup)
            await timed(operation, warmup, ops)
            return
        container = container_for(engine, record_commands=side == "keel")
        async with running(container):
            operation = through_bus(MessageBus(container.unit_of_work, command_handlers={Allocate: allocate}))
            await timed(operation, 0, warmup)
            await timed(operation, warmup, ops)
    finally:
        await engine.dispose()
        await plain.dispose()


def report(
    url: str, results: dict[str, dict[str, list[tuple[float, float]]]], rounds: int, ops: int
) -> dict[str, float]:
    """Print a table per pair; return the median per-round throughput ratio of each."""
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"bus_overhead: the Allocate use case; {rounds} interleaved rounds x {ops} ops on {shown}")
    ratios: dict[str, float] = {}
    for pair, variants in results.items():
        print(f"\n{pair}")
        print(f"  {'variant':<28}{'median ops/s':>14}{'min':>8}{'max':>8}{'CPU ms/op':>11}")
        for name, values in variants.items():
            rates = [rate for rate, _ in values]
            cpu = statistics.median(c for _, c in values)
            print(f"  {name:<28}{statistics.median(rates):>14.0f}{min(rates):>8.0f}{max(rates):>8.0f}{cpu:>11.3f}")
        baseline, keel = variants.values()
        per_round = sorted(k[0] / b[0] for k, b in zip(keel, baseline, strict=True))
        cpu_ratio = statistics.median(b[1] / k[1] for k, b in zip(keel, baseline, strict=True))
        ratios[pair] = statistics.median(per_round)
        spread = f"middle half {per_round[len(per_round) // 4]:.3f}..{per_round[(3 * len(per_round)) // 4]:.3f}"
        print(
            f"  keel / hand-written = {ratios[pair]:.3f}x throughput (median of per-round ratios, {spread}; "
            f"target >= 0.95x), {cpu_ratio:.3f}x by CPU time per op"
        )
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per round and variant")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 20)
    ops = args.ops or (40 if args.quick else 100)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    results: Any = asyncio.run(run(url, rounds, ops))
    report(url, results, rounds, ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
