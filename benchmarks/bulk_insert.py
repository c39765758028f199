"""Bulk insert: keel's repository against a hand-written ``session.execute(insert(Model), rows)``.

Each round loads ROWS new rows into an emptied table, committed, three ways:

* ``hand-written insert()``: ``session.execute(insert(Model), rows)`` with
  the rows as dicts, the baseline the issue names;
* ``repo.insert_many``: keel's set-based bulk path, given entities;
* ``repo.add_many``: the tracked path (entities stay in the session, later
  changes saved, versions checked), flushed on commit by the ORM.

Entities and dicts are built before the clock starts. Rounds rotate the
order of the variants so drift hits them alike; the ratio reported is the
median of per-round ratios (baseline time / variant time, so 1.0 = as fast).

    python -m benchmarks.bulk_insert            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.bulk_insert --quick    # a short smoke run

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
from typing import Any

from sqlalchemy import String, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks.uow_overhead import _no_synchronous_commit, ensure_database, keel_engine, plain_engine
from keel import AggregateRoot, SqlAlchemyRepository
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, TimestampMixin, VersionMixin

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"


class BulkRow(Base, AggregateRoot, VersionMixin, TimestampMixin):
    __tablename__ = "bench_bulk_rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    qty: Mapped[int]


Variant = Callable[[int], Awaitable[float]]


def hand_written(factory: async_sessionmaker[AsyncSession]) -> Variant:
    async def run(count: int) -> float:
        rows = [{"name": f"row-{i}", "qty": i, "version": 1} for i in range(count)]
        started = time.perf_counter()
        async with factory() as session:
            await session.execute(insert(BulkRow), rows)
            await session.commit()
        return time.perf_counter() - started

    return run


def keel_insert_many(factory: async_sessionmaker[AsyncSession]) -> Variant:
    async def run(count: int) -> float:
        entities = [BulkRow(name=f"row-{i}", qty=i) for i in range(count)]
        started = time.perf_counter()
        async with factory() as session:
            await SqlAlchemyRepository(session, model=BulkRow).insert_many(entities)
            await session.commit()
        return time.perf_counter() - started

    return run


def keel_add_many(factory: async_sessionmaker[AsyncSession]) -> Variant:
    async def run(count: int) -> float:
        entities = [BulkRow(name=f"row-{i}", qty=i) for i in range(count)]
        started = time.perf_counter()
        async with factory() as session:
            SqlAlchemyRepository(session, model=BulkRow).add_many(entities)
            await session.commit()
        return time.perf_counter() - started

    return run


async def empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {BulkRow.__tablename__} RESTART IDENTITY"))


async def run(url: str, rounds: int, count: int) -> dict[str, list[float]]:
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(url=url, pool_size=2, max_connections=4))
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "connect", _no_synchronous_commit)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(BulkRow.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
            await conn.run_sync(BulkRow.__table__.create)  # type: ignore[attr-defined]
        factory = create_session_factory(engine)
        variants = {
            "hand-written insert()": hand_written(factory),
            "keel insert_many": keel_insert_many(factory),
            "keel add_many (tracked)": keel_add_many(factory),
        }
        for variant in variants.values():  # warm-up: statement caches, pool, JIT-free but cache-full
            await empty(engine)
            await variant(min(count, 2000))
        results: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                await empty(engine)
                results[name].append(await variants[name](count))
        return results
    finally:
        await engine.dispose()


def report(url: str, results: dict[str, list[float]], rounds: int, count: int) -> dict[str, float]:
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"bulk_insert: {count:,} rows per round, {rounds} rotated rounds on {shown}")
    print(f"{'variant':<26}{'median s':>10}{'rows/s':>12}{'vs baseline':>13}")
    baseline = results["hand-written insert()"]
    ratios: dict[str, float] = {}
    for name, times in results.items():
        ratio = statistics.median(b / t for b, t in zip(baseline, times, strict=True))
        ratios[name] = ratio
        median = statistics.median(times)
        print(f"{name:<26}{median:>10.3f}{count / median:>12,.0f}{ratio:>12.2f}x")
    print(f"insert_many / hand-written = {ratios['keel insert_many']:.2f}x (target >= 0.9x)")
    return ratios


# --- instruction counts (benchmarks.instructions) ------------------------------------------

#: Rows per operation of the instruction count: one load of BATCH rows, committed
#: (``KEEL_BENCH_BATCH`` changes it, to tell per-load from per-row costs).
BATCH = int(os.environ.get("KEEL_BENCH_BATCH", "100"))
SIDES = ("Core executemany", "keel insert_many (mappings)", "keel insert_many (entities)")


def _rows(count: int) -> list[dict[str, Any]]:
    return [{"name": f"row-{i}", "qty": i} for i in range(count)]


async def run_side(url: str, side: str, warmup: int, ops: int) -> None:
    """Run ``warmup`` then ``ops`` loads of BATCH rows by one side alone (for ``benchmarks.instructions``).

    Each side builds its input inside the operation (dicts, or entities for the
    last side). The baseline is SQLAlchemy Core on a plain engine:
    ``conn.execute(insert(table), rows)``, one executemany (insertmanyvalues
    batches on PostgreSQL), with ``version`` given and the timestamp columns'
    Python defaults applied by Core.
    """
    await ensure_database(url)
    engine = plain_engine(url) if side == SIDES[0] else keel_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(BulkRow.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
            await conn.run_sync(BulkRow.__table__.create)  # type: ignore[attr-defined]
        table = Base.metadata.tables[BulkRow.__tablename__]
        factory = create_session_factory(engine)

        async def core() -> None:
            rows = [{**row, "version": 1} for row in _rows(BATCH)]
            async with engine.begin() as conn:
                await conn.execute(insert(table), rows)

        async def mappings() -> None:
            async with factory() as session:
                await SqlAlchemyRepository(session, model=BulkRow).insert_many(_rows(BATCH))
                await session.commit()

        async def entities() -> None:
            async with factory() as session:
                await SqlAlchemyRepository(session, model=BulkRow).insert_many(BulkRow(**row) for row in _rows(BATCH))
                await session.commit()

        operation = {SIDES[0]: core, SIDES[1]: mappings, SIDES[2]: entities}[side]
        for _ in range(warmup + ops):
            await operation()
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 7)
    count = args.rows or (2_000 if args.quick else 100_000)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    results: Any = asyncio.run(run(url, rounds, count))
    report(url, results, rounds, count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
