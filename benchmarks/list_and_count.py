"""``list_and_count``: two queries (``COUNT`` then the page) against one with ``count(*) OVER ()``.

Fills a table with ROWS rows (one ``INSERT ... SELECT generate_series``), then
times, through the repository, a page of 50 rows with its total, three ways of
filtering: every row, a filter matching about a tenth of them (on an indexed
column), and one matching 100 rows. Each case runs with the default (two
queries) and with ``count_with_window = True`` (one query); calls rotate and
each figure is the median of its calls.

    python -m benchmarks.list_and_count            # PostgreSQL, 500,000 rows, database keel_test on 127.0.0.1
    python -m benchmarks.list_and_count --quick    # a short smoke run (50,000 rows)

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

from sqlalchemy import Index, String, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks.uow_overhead import ensure_database
from keel import SqlAlchemyRepository
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, SoftDeleteMixin, TimestampMixin, VersionMixin

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"
SIZE = 50


class Listing(Base, VersionMixin, TimestampMixin, SoftDeleteMixin):
    __tablename__ = "bench_listings"
    __table_args__ = (Index("ix_bench_listings_bucket_created_at", "bucket", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[int]
    title: Mapped[str] = mapped_column(String(60))


class TwoQueries(SqlAlchemyRepository[Listing]):
    count_with_window = False


class WindowCount(SqlAlchemyRepository[Listing]):
    count_with_window = True


async def fill(engine: AsyncEngine, rows: int) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Listing.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
        await conn.run_sync(Listing.__table__.create)  # type: ignore[attr-defined]
        await conn.execute(
            text(
                "INSERT INTO bench_listings (id, bucket, title, version, created_at, updated_at, deleted_at) "
                "SELECT g, g % 10, 'listing ' || g, 1, ts, ts, NULL "
                "FROM generate_series(1, :rows) AS g, "
                "LATERAL (SELECT timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' AS ts) AS t"
            ),
            {"rows": rows},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE bench_listings"))


Case = Callable[[], Awaitable[tuple[list[Any], int]]]


def cases(factory: async_sessionmaker[AsyncSession], rows: int) -> dict[str, Case]:
    filters: dict[str, list[Any]] = {
        "all rows": [],
        "a tenth (bucket = 3)": [Listing.bucket == 3],
        "100 rows (id range)": [Listing.id.between(rows // 2, rows // 2 + 99)],
    }

    def case(repository: type[SqlAlchemyRepository[Listing]], where: list[Any]) -> Case:
        async def run() -> tuple[list[Any], int]:
            async with factory() as session:
                return await repository(session).list_and_count(*where, order_by="-created_at", limit=SIZE)

        return run

    made: dict[str, Case] = {}
    for name, where in filters.items():
        made[f"{name}, two queries"] = case(TwoQueries, where)
        made[f"{name}, window count"] = case(WindowCount, where)
    return made


async def run(url: str, rows: int, repeats: int) -> dict[str, list[float]]:
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(url=url, pool_size=2, max_connections=4))
    try:
        await fill(engine, rows)
        variants = cases(create_session_factory(engine), rows)
        names = list(variants)
        for two, window in zip(names[::2], names[1::2], strict=True):  # warm-up, and the two agree
            (a, total_a), (b, total_b) = await variants[two](), await variants[window]()
            if total_a != total_b or [e.id for e in a] != [e.id for e in b]:
                raise RuntimeError(f"{two} and {window} disagree")
        results: dict[str, list[float]] = {name: [] for name in names}
        for repeat in range(repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                await variants[name]()
                results[name].append((time.perf_counter() - started) * 1000)
        return results
    finally:
        await engine.dispose()


def report(url: str, results: dict[str, list[float]], rows: int, repeats: int) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"list_and_count: {rows:,} rows, limit {SIZE}, order_by='-created_at', {repeats} rotated calls each, {shown}")
    print(f"{'case':<38}{'median ms':>11}{'min ms':>9}")
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name:<38}{medians[name]:>11.2f}{min(values):>9.2f}")
    names = list(results)
    for two, window in zip(names[::2], names[1::2], strict=True):
        print(f"{window}: {medians[window] / medians[two]:.2f}x two queries")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50,000 rows and fewer calls")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    rows = args.rows or (50_000 if args.quick else 500_000)
    repeats = args.repeats or (6 if args.quick else 20)
    report(url, asyncio.run(run(url, rows, repeats)), rows, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
