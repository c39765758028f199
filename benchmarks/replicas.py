"""Read replicas: read-only throughput over primary + replica vs the primary alone; the read-your-writes wait.

One read = a read-only unit of work that loads a row by primary key. The same
number of reads runs from ``CONCURRENCY`` tasks through two factories, in
alternating rounds: one without replicas (every read on the primary), one
whose router spreads reads round-robin over the replica and the primary
(the primary listed among the replicas). Then, under normal streaming
replication, each round commits a change and at once opens a read-only unit
of work in the same context, which waits for the replica to replay that
commit: the wait's p50/p99 is the price of read-your-writes.

By default it builds its own primary and streaming replica (``initdb`` +
``pg_basebackup -R`` on free loopback ports, removed afterwards; the Debian
PostgreSQL server packages must be installed). ``KEEL_BENCH_PRIMARY_URL`` and
``KEEL_BENCH_REPLICA_URL`` point it at an existing pair instead. Both servers
of the private pair share this machine's CPUs, so the spread measures keel's
routing, not extra hardware.

    python -m benchmarks.replicas            # full run
    python -m benchmarks.replicas --quick    # a short smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import String, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from keel import AggregateRoot, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.database.replicas import ReplicaRouter, read_after
from keel.orm import Base, VersionMixin

ROWS = 1000
CONCURRENCY = 16


class ReplicaBenchItem(Base, AggregateRoot, VersionMixin):
    __tablename__ = "bench_replica_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[int]


class ReplicaBenchUnitOfWork(SqlAlchemyUnitOfWork):
    items: SqlAlchemyRepository[ReplicaBenchItem]


@contextmanager
def server_pair() -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL): from the environment, or a private pair made for this run."""
    primary, replica = os.environ.get("KEEL_BENCH_PRIMARY_URL"), os.environ.get("KEEL_BENCH_REPLICA_URL")
    if primary and replica:
        yield primary, replica
        return
    from tests.support.postgres_cluster import replicated_clusters  # the test suite's helper; a dev-only import

    with replicated_clusters() as pair:
        yield pair.primary.url, pair.replica.url


def engine_for(url: str) -> AsyncEngine:
    return create_engine(DatabaseSettings(url=url, pool_size=CONCURRENCY, max_connections=CONCURRENCY * 2))


async def fill(primary: AsyncEngine, replica: AsyncEngine) -> None:
    async with primary.begin() as conn:
        table = Base.metadata.tables[ReplicaBenchItem.__tablename__]
        await conn.run_sync(lambda sync: table.drop(sync, checkfirst=True))
        await conn.run_sync(lambda sync: table.create(sync))
        await conn.execute(
            insert(ReplicaBenchItem),
            [{"id": n, "name": f"item {n}", "value": 0, "version": 1} for n in range(ROWS)],
        )
    deadline = time.monotonic() + 60
    while True:  # the replica has the rows before reads start
        try:
            async with replica.connect() as conn:
                if await conn.scalar(text("SELECT count(*) FROM bench_replica_items")) == ROWS:
                    return
        except Exception:  # the table may not be replayed yet: poll until the deadline
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def reads(factory: async_sessionmaker[AsyncSession], count: int) -> tuple[float, float]:
    """(reads per second, client CPU milliseconds per read) for ``count`` read-only units of work."""
    keys = iter([random.randrange(ROWS) for _ in range(count)])

    async def worker() -> None:
        uow = ReplicaBenchUnitOfWork(factory, read_only=True)
        for key in keys:
            async with uow:
                await uow.items.get(key)

    started, cpu = time.perf_counter(), time.process_time()
    with read_after(None):
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / count


async def read_your_writes(
    factory: async_sessionmaker[AsyncSession], router: ReplicaRouter, rounds: int
) -> list[float]:
    """Milliseconds each read-only unit of work waited for the replica to replay the commit just made."""
    waits = []
    for n in range(rounds):
        async with ReplicaBenchUnitOfWork(factory) as uow:
            (await uow.items.get(n % ROWS)).value += 1
            await uow.commit()
        before = router.stats.read_your_writes_wait_seconds
        async with ReplicaBenchUnitOfWork(factory, read_only=True) as reader:
            await reader.items.get(n % ROWS)
        waits.append((router.stats.read_your_writes_wait_seconds - before) * 1000)
    return waits


#: (reads per second, client CPU ms per read) of each round.
Rates = list[tuple[float, float]]


async def run(
    primary_url: str, replica_url: str, count: int, rounds: int
) -> tuple[Rates, Rates, list[float], ReplicaRouter]:
    primary, replica, primary_reader = engine_for(primary_url), engine_for(replica_url), engine_for(primary_url)
    spread_router = ReplicaRouter([replica, primary_reader], health_interval=60)
    ryw_router = ReplicaRouter([replica], health_interval=60, read_your_writes_timeout=2.0)
    try:
        await fill(primary, replica)
        alone = create_session_factory(primary)
        spread = create_session_factory(primary, replicas=spread_router)
        await reads(alone, CONCURRENCY * 4)  # warm both pools
        await reads(spread, CONCURRENCY * 4)
        alone_rates: Rates = []
        spread_rates: Rates = []
        for round_number in range(rounds):
            order = [(alone, alone_rates), (spread, spread_rates)]
            for factory, rates in order if round_number % 2 == 0 else order[::-1]:
                rates.append(await reads(factory, count))
        waits = await read_your_writes(create_session_factory(primary, replicas=ryw_router), ryw_router, count // 4)
        return alone_rates, spread_rates, waits, ryw_router
    finally:
        for engine in (primary, replica, primary_reader):
            await engine.dispose()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    count, rounds = (400, 2) if args.quick else (4000, 6)
    with server_pair() as (primary_url, replica_url):
        alone, spread, waits, router = asyncio.run(run(primary_url, replica_url, count, rounds))
    a, s = (statistics.median(rate for rate, _ in rates) for rates in (alone, spread))
    a_cpu, s_cpu = (statistics.median(cpu for _, cpu in rates) for rates in (alone, spread))
    print(f"replicas: {count} read-only units of work per round, {CONCURRENCY} tasks, {rounds} alternating rounds")
    print(f"{'reads on':<28}{'median reads/s':>16}{'client CPU ms/read':>20}")
    print(f"{'primary alone':<28}{a:>16.0f}{a_cpu:>20.3f}")
    print(f"{'primary + replica':<28}{s:>16.0f}{s_cpu:>20.3f}")
    print(f"primary + replica / primary alone = {s / a:.2f}x reads/s, {s_cpu / a_cpu:.2f}x client CPU per read")
    print(
        f"read-your-writes wait after a commit ({len(waits)} commits): p50 {percentile(waits, 0.5):.2f} ms, "
        f"p99 {percentile(waits, 0.99):.2f} ms, max {max(waits):.2f} ms, "
        f"timeouts {router.stats.read_your_writes_timeouts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
