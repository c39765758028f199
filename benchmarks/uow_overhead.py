"""What keel's unit of work and repository cost over hand-written SQLAlchemy.

One operation = load a row by primary key, change it, commit. The keel side
runs on keel's engine and session factory; the hand-written side on a plain
``create_async_engine`` + ``async_sessionmaker`` with the same pool settings
(pre-ping included) and driver timeouts, so it pays none of keel's session
listeners or hooks.
Both use the same versioned model, so the difference is keel's own code
(unit of work, repository, session listeners, event collection, error
translation). Rounds alternate between the variants (and which goes first)
so that drift in the machine's speed hits both alike.

    python -m benchmarks.uow_overhead            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.uow_overhead --quick    # a short smoke run

``KEEL_BENCH_DATABASE_URL`` points it elsewhere; the database is created if absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from itertools import cycle
from typing import Any

from sqlalchemy import String, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from keel import AggregateRoot, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, VersionMixin

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"
ROWS = 100


class BenchItem(Base, AggregateRoot, VersionMixin):
    __tablename__ = "bench_uow_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[int]


class BenchUnitOfWork(SqlAlchemyUnitOfWork):
    items: SqlAlchemyRepository[BenchItem]


Operation = Callable[[int], Awaitable[None]]


def hand_written(session_factory: async_sessionmaker[AsyncSession]) -> Operation:
    async def operation(key: int) -> None:
        async with session_factory() as session, session.begin():
            item = await session.get(BenchItem, key)
            assert item is not None
            item.value += 1

    return operation


def through_keel(session_factory: async_sessionmaker[AsyncSession]) -> Operation:
    uow = BenchUnitOfWork(session_factory)

    async def operation(key: int) -> None:
        async with uow:
            item = await uow.items.get(key)
            item.value += 1
            await uow.commit()

    return operation


def plain_engine(url: str) -> AsyncEngine:
    """The hand-written side's engine: SQLAlchemy's own, with keel's pool settings and no keel listeners.

    On asyncpg it passes the driver the same timeouts keel's engine does
    (``command_timeout``, ``timeout``, the server's ``statement_timeout``):
    a service written by hand that must not hang on a frozen server sets
    them too, and asyncpg arms a timer per command for ``command_timeout``,
    which is the driver's cost, not keel's.
    """
    connect_args: dict[str, Any] = {}
    if make_url(url).get_driver_name() == "asyncpg":
        db = DatabaseSettings(url=url)
        connect_args = {
            "timeout": db.connect_timeout,
            "command_timeout": db.command_timeout,
            "server_settings": {
                "application_name": "hand-written",
                "statement_timeout": str(round(db.statement_timeout * 1000)),
            },
        }
    engine = create_async_engine(
        url, pool_size=2, max_overflow=2, pool_pre_ping=True, pool_recycle=1800, connect_args=connect_args
    )
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "connect", _no_synchronous_commit)
    return engine


def keel_engine(url: str) -> AsyncEngine:
    """The keel side's engine: ``keel.infrastructure.database.create_engine``."""
    engine = create_engine(DatabaseSettings(url=url, pool_size=2, max_connections=4))
    if engine.dialect.name == "postgresql":
        # The WAL flush at each commit costs both variants the same disk wait and
        # only adds noise; without it the ratio shows keel's own (CPU) cost.
        event.listen(engine.sync_engine, "connect", _no_synchronous_commit)
    return engine


def plain_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """What hand-written code builds: no keel ``info``, so keel's session listeners return at once."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def ensure_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist yet."""
    target = make_url(url)
    if target.get_backend_name() != "postgresql":
        return
    import asyncpg

    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database):
            await conn.execute(f'CREATE DATABASE "{target.database}"')  # name from our own settings, not input
    finally:
        await conn.close()


def _no_synchronous_commit(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit = off")
    cursor.close()


async def prepare(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(BenchItem.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
        await conn.run_sync(BenchItem.__table__.create)  # type: ignore[attr-defined]
        await conn.execute(
            BenchItem.__table__.insert(),  # type: ignore[attr-defined]
            [{"id": i, "name": f"item-{i}", "value": 0, "version": 1} for i in range(ROWS)],
        )


async def timed(operation: Operation, keys: cycle[int], ops: int) -> float:
    """Operations per second over ``ops`` sequential operations."""
    started = time.perf_counter()
    for _ in range(ops):
        await operation(next(keys))
    return ops / (time.perf_counter() - started)


async def run(url: str, rounds: int, ops: int) -> dict[str, list[float]]:
    await ensure_database(url)
    engine, plain = keel_engine(url), plain_engine(url)
    try:
        await prepare(engine)
        variants = {
            "hand-written AsyncSession": hand_written(plain_session_factory(plain)),
            "keel UoW + repository": through_keel(create_session_factory(engine)),
        }
        keys = cycle(range(ROWS))
        for operation in variants.values():  # warm up pools, caches and the statement cache
            await timed(operation, keys, max(ops // 5, 20))
        results: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                results[name].append(await timed(variants[name], keys, ops))
        return results
    finally:
        await engine.dispose()
        await plain.dispose()


#: The sides ``benchmarks.instructions`` counts, baseline first.
SIDES = ("hand-written", "keel")


async def run_side(url: str, side: str, warmup: int, ops: int) -> None:
    """Run ``warmup`` then ``ops`` operations of one side alone (for ``benchmarks.instructions``)."""
    await ensure_database(url)
    engine = keel_engine(url) if side == "keel" else plain_engine(url)
    try:
        await prepare(engine)
        if side == "keel":
            operation = through_keel(create_session_factory(engine))
        else:
            operation = hand_written(plain_session_factory(engine))
        keys = cycle(range(ROWS))
        await timed(operation, keys, warmup)
        await timed(operation, keys, ops)
    finally:
        await engine.dispose()


def report(url: str, results: dict[str, list[float]], rounds: int, ops: int) -> float:
    """Print the table; return the median of the per-round ratios (robust to a noisy neighbour)."""
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"uow_overhead: load by primary key, modify, commit; {rounds} interleaved rounds x {ops} ops on {shown}")
    print(f"{'variant':<28}{'median ops/s':>14}{'min':>10}{'max':>10}")
    for name, values in results.items():
        print(f"{name:<28}{statistics.median(values):>14.0f}{min(values):>10.0f}{max(values):>10.0f}")
    baseline, keel = results.values()
    ratios = sorted(k / b for k, b in zip(keel, baseline, strict=True))
    ratio = statistics.median(ratios)
    spread = f"middle half {ratios[len(ratios) // 4]:.3f}..{ratios[(3 * len(ratios)) // 4]:.3f}"
    print(f"keel / hand-written = {ratio:.3f}x (median of per-round ratios, {spread}; target >= 1.0x)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per round and variant")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 100)
    ops = args.ops or (50 if args.quick else 100)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    results = asyncio.run(run(url, rounds, ops))
    report(url, results, rounds, ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
