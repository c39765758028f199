"""A hot row: N concurrent increments of one counter, optimistic retries against ``get(for_update=True)``.

Each of N tasks increments one versioned counter once, in its own unit of
work on its own connection. Optimistic: read, increment, commit; on
``ConcurrencyError`` (a stale version) start again after a short jittered
backoff, as the bus's command retry does. Pessimistic: read with
``for_update=True`` (``SELECT ... FOR UPDATE``), increment, commit; the
others wait for the row instead of failing. Reports wall time, attempts and
conflicts, median of ROUNDS rounds.

    python -m benchmarks.hot_row            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.hot_row --quick    # fewer rounds, 5 and 10 tasks

``KEEL_BENCH_DATABASE_URL`` points it elsewhere; the database is created if absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks.uow_overhead import ensure_database
from keel import ConcurrencyError, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, VersionMixin

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"


class HotCounter(Base, VersionMixin):
    __tablename__ = "bench_hot_counters"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class CounterUnitOfWork(SqlAlchemyUnitOfWork):
    counters: SqlAlchemyRepository[HotCounter]


async def increment(factory: async_sessionmaker[AsyncSession], *, for_update: bool) -> int:
    """One increment; returns how many attempts it took."""
    attempts = 0
    while True:
        attempts += 1
        try:
            async with CounterUnitOfWork(factory) as uow:
                counter = await uow.counters.get(1, for_update=for_update)
                counter.value += 1
                await uow.commit()
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempts, 10)))  # jittered backoff, as retries do
        else:
            return attempts


async def round_of(factory: async_sessionmaker[AsyncSession], tasks: int, *, for_update: bool) -> tuple[float, int]:
    async with CounterUnitOfWork(factory) as uow:
        counter = await uow.counters.get_or_none(1)
        if counter is None:
            uow.counters.add(HotCounter(id=1, value=0))
        else:
            counter.value = 0
        await uow.commit()
    started = time.perf_counter()
    attempts = await asyncio.gather(*(increment(factory, for_update=for_update) for _ in range(tasks)))
    elapsed = time.perf_counter() - started
    async with CounterUnitOfWork(factory) as uow:
        if (await uow.counters.get(1)).value != tasks:
            raise RuntimeError("lost an increment")
    return elapsed * 1000, sum(attempts)


async def run(url: str, sizes: list[int], rounds: int) -> list[tuple[int, str, float, float]]:
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(url=url, pool_size=max(sizes), max_connections=max(sizes) + 5))
    rows = []
    try:
        async with engine.begin() as conn:
            await conn.run_sync(HotCounter.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
            await conn.run_sync(HotCounter.__table__.create)  # type: ignore[attr-defined]
        factory = create_session_factory(engine)
        for tasks in sizes:
            for name, for_update in (("optimistic retries", False), ("for_update=True", True)):
                results = [await round_of(factory, tasks, for_update=for_update) for _ in range(rounds)]
                rows.append(
                    (tasks, name, statistics.median(r[0] for r in results), statistics.median(r[1] for r in results))
                )
    finally:
        await engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    rounds = 2 if args.quick else 7
    sizes = [5, 10] if args.quick else [10, 50]
    results = asyncio.run(run(url, sizes, rounds))
    print(
        f"hot_row: one counter, N concurrent increments, median of {rounds} rounds, "
        f"{make_url(url).render_as_string(hide_password=True)}"
    )
    print(f"{'N':>4}  {'variant':<20}{'wall ms':>10}{'attempts':>10}")
    for tasks, name, wall, attempts in results:
        print(f"{tasks:>4}  {name:<20}{wall:>10.1f}{attempts:>10.0f}")
    for optimistic, locked in zip(results[::2], results[1::2], strict=True):
        print(f"N={optimistic[0]}: for_update takes {locked[2] / optimistic[2]:.2f}x the optimistic wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
