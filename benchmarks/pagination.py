"""Pagination at depth: keyset cursor pages against OFFSET pages on 1,000,000 rows.

Fills a table with ROWS rows in one ``INSERT ... SELECT generate_series``,
then measures, through the repository, page 1 and the page at depth DEPTH
(size 50) both by cursor (``paginate_by_cursor``) and by offset
(``paginate``). The cursor for the deep page is the one keel would hand out
for the row just before it, built once up front, so each timed call is one
ordinary request. Calls rotate between the four cases; each figure is the
median of its calls. Ordering: ``-created_at`` (NOT NULL, served by an index
on ``(created_at, id)``), the shape of a typical "newest first" feed.

    python -m benchmarks.pagination            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.pagination --quick    # a short smoke run (100,000 rows)

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
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, select, text, tuple_
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks.uow_overhead import ensure_database, keel_engine, plain_engine, plain_session_factory
from keel import SqlAlchemyRepository
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.repository._sorting import sort_keys
from keel.infrastructure.repository.cursor import CursorState, default_cursor_secret, encode_cursor, fingerprint
from keel.orm import Base, SoftDeleteMixin, TimestampMixin, VersionMixin

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"
SIZE = 50
ORDER = "-created_at"


class FeedEntry(Base, VersionMixin, TimestampMixin, SoftDeleteMixin):
    __tablename__ = "bench_feed_entries"
    __table_args__ = (Index("ix_bench_feed_entries_created_at_id", "created_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(60))


async def fill(engine: AsyncEngine, rows: int) -> None:
    """ROWS rows, one per second of created_at, in a single statement."""
    async with engine.begin() as conn:
        await conn.run_sync(FeedEntry.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
        await conn.run_sync(FeedEntry.__table__.create)  # type: ignore[attr-defined]
        await conn.execute(
            text(
                "INSERT INTO bench_feed_entries (id, title, version, created_at, updated_at, deleted_at) "
                "SELECT g, 'entry ' || g, 1, ts, ts, NULL "
                "FROM generate_series(1, :rows) AS g, "
                "LATERAL (SELECT timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' AS ts) AS t"
            ),
            {"rows": rows},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE bench_feed_entries"))


async def deep_cursor(factory: async_sessionmaker[AsyncSession], depth: int) -> str:
    """The cursor keel hands out for the row just before position ``depth`` in the ordering."""
    async with factory() as session:
        row = (
            await session.execute(
                text(
                    "SELECT created_at, id FROM bench_feed_entries ORDER BY created_at DESC, id DESC OFFSET :n LIMIT 1"
                ),
                {"n": depth - 1},
            )
        ).one()
    keys = sort_keys(FeedEntry, ORDER)
    digest = fingerprint(FeedEntry, keys, [], "live")
    return encode_cursor(CursorState((row.created_at, row.id), False, digest), default_cursor_secret())


Case = Callable[[], Awaitable[list[Any]]]


def cases(factory: async_sessionmaker[AsyncSession], depth: int, cursor: str) -> dict[str, Case]:
    def by_cursor(token: str | None) -> Case:
        async def run() -> list[Any]:
            async with factory() as session:
                page = await SqlAlchemyRepository(session, model=FeedEntry).paginate_by_cursor(
                    size=SIZE, order_by=ORDER, cursor=token
                )
            return page.items

        return run

    def by_offset(number: int) -> Case:
        async def run() -> list[Any]:
            async with factory() as session:
                page = await SqlAlchemyRepository(session, model=FeedEntry).paginate(
                    page=number, size=SIZE, order_by=ORDER
                )
            return page.items

        return run

    deep_page = depth // SIZE + 1
    return {
        "cursor, page 1": by_cursor(None),
        f"cursor, depth {depth:,}": by_cursor(cursor),
        "offset, page 1": by_offset(1),
        f"offset, depth {depth:,}": by_offset(deep_page),
    }


async def run(url: str, rows: int, depth: int, repeats: int) -> dict[str, list[float]]:
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(url=url, pool_size=2, max_connections=4))
    try:
        await fill(engine, rows)
        factory = create_session_factory(engine)
        cursor = await deep_cursor(factory, depth)
        variants = cases(factory, depth, cursor)
        firsts = {name: [e.id for e in await case()] for name, case in variants.items()}  # warm-up + check
        cursor_deep, offset_deep = (firsts[name] for name in list(variants)[1::2])
        if cursor_deep != offset_deep or len(cursor_deep) != SIZE:
            raise RuntimeError("cursor and offset pages disagree at depth")
        results: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for repeat in range(repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                await variants[name]()
                results[name].append((time.perf_counter() - started) * 1000)
        return results
    finally:
        await engine.dispose()


def report(url: str, results: dict[str, list[float]], rows: int, depth: int, repeats: int) -> float:
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"pagination: {rows:,} rows, page size {SIZE}, order_by={ORDER!r}, {repeats} rotated calls each, {shown}")
    print(f"{'case':<28}{'median ms':>11}{'min ms':>9}")
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name:<28}{medians[name]:>11.2f}{min(values):>9.2f}")
    c1, cd, o1, od = medians.values()
    ratio = cd / c1
    print(f"cursor deep / page 1 = {ratio:.2f}x (target <= 1.5x); offset deep / page 1 = {od / o1:.1f}x")
    print("(each call includes a session checkout and the repository; the offset call also runs its COUNT)")
    return ratio


# --- instruction counts (benchmarks.instructions) ------------------------------------------

#: Rows of the instruction count's table and the depth of its page (the plan is the same at any depth).
COUNT_ROWS = 20_000
COUNT_DEPTH = 10_000
SIDES = ("hand-written keyset SELECT", "keel paginate_by_cursor")


def _token(created_at: Any, id: int) -> str:
    return f"{created_at.isoformat()}|{id}"


async def run_side(url: str, side: str, warmup: int, ops: int) -> None:
    """Serve ``warmup`` then ``ops`` requests for the page at COUNT_DEPTH by one side alone.

    The hand-written side is what an application would write without keel: a
    plain session, ``WHERE (created_at, id) < (:c, :i) AND deleted_at IS NULL
    ORDER BY created_at DESC, id DESC LIMIT size + 1``, its cursor an unsigned
    ``"<created_at>|<id>"`` string parsed on the way in and built for the next
    page on the way out. keel's side is ``paginate_by_cursor`` with a signed
    cursor, on keel's engine and session factory.
    """
    await ensure_database(url)
    engine = plain_engine(url) if side == SIDES[0] else keel_engine(url)
    try:
        await fill(engine, COUNT_ROWS)
        if side == SIDES[0]:
            plain = plain_session_factory(engine)
            async with plain() as session:
                row = (
                    await session.execute(
                        select(FeedEntry.created_at, FeedEntry.id)
                        .order_by(FeedEntry.created_at.desc(), FeedEntry.id.desc())
                        .offset(COUNT_DEPTH - 1)
                        .limit(1)
                    )
                ).one()
            token = _token(row.created_at, row.id)

            async def operation() -> None:
                text_at, text_id = token.rsplit("|", 1)
                boundary = (datetime.fromisoformat(text_at), int(text_id))
                async with plain() as session:
                    stmt = (
                        select(FeedEntry)
                        .where(tuple_(FeedEntry.created_at, FeedEntry.id) < boundary, FeedEntry.deleted_at.is_(None))
                        .order_by(FeedEntry.created_at.desc(), FeedEntry.id.desc())
                        .limit(SIZE + 1)
                    )
                    items = list((await session.scalars(stmt)).all())
                _ = _token(items[SIZE - 1].created_at, items[SIZE - 1].id) if len(items) > SIZE else None

        else:
            factory = create_session_factory(engine)
            cursor = await deep_cursor(factory, COUNT_DEPTH)

            async def operation() -> None:
                async with factory() as session:
                    await SqlAlchemyRepository(session, model=FeedEntry).paginate_by_cursor(
                        size=SIZE, order_by=ORDER, cursor=cursor
                    )

        for _ in range(warmup + ops):
            await operation()
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    depth = rows * 9 // 10
    repeats = args.repeats or (5 if args.quick else 40)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    results = asyncio.run(run(url, rows, depth, repeats))
    report(url, results, rows, depth, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
