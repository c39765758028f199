"""Peers on one repository workload: keel, advanced-alchemy, hand-written SQLAlchemy and raw asyncpg.

One operation = get a row by primary key, read an offset page of 20 rows
with its total count, insert one row, commit: the three calls a CRUD service
makes most, written the way each peer's documentation shows.

- ``raw asyncpg`` (the floor): a pool, three statements, a transaction.
- ``hand-written SQLAlchemy``: ``session.get``, a SELECT and a COUNT, ``add``.
- ``advanced-alchemy``: ``SQLAlchemyAsyncRepository`` (``get``,
  ``list_and_count(LimitOffset, OrderBy)``, ``add``) on a plain session.
- ``keel``: a unit of work with a ``SqlAlchemyRepository`` (``get``,
  ``paginate``, ``add``).

All sides share one table and one mapped class (on keel's ``Base``; the
non-keel sides use SQLAlchemy's own engine and session) and alternate in
rounds; the ratios are keel over each peer (> 1.0x: keel is faster).

    python -m benchmarks.peers           # 20 rounds x 200 ops
    python -m benchmarks.peers --quick   # a short smoke run

Needs the ``bench`` extra (advanced-alchemy). ``KEEL_BENCH_DATABASE_URL``
points it elsewhere; the database is created if absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from itertools import count

import asyncpg
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import String, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks._event_store import ensure_database
from benchmarks.uow_overhead import keel_engine, plain_engine, plain_session_factory
from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.infrastructure.database import create_session_factory
from keel.orm import Base

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench"
ROWS = 1_000
PAGE = 20
Operation = Callable[[int], Awaitable[None]]


class PeerItem(Base):
    __tablename__ = "bench_peer_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class PeerItems(SqlAlchemyRepository[PeerItem]):
    pass


class PeerUnitOfWork(SqlAlchemyUnitOfWork):
    items: PeerItems


class AdvancedAlchemyItems(SQLAlchemyAsyncRepository[PeerItem]):
    model_type = PeerItem


_ids = count(ROWS)


def _offset(key: int) -> int:
    return (key * 7) % (ROWS - PAGE)


def with_asyncpg(pool: asyncpg.Pool) -> Operation:
    async def operation(key: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchrow("SELECT id, name FROM bench_peer_items WHERE id = $1", key)
            await conn.fetch("SELECT id, name FROM bench_peer_items ORDER BY id LIMIT $1 OFFSET $2", PAGE, _offset(key))
            await conn.fetchval("SELECT count(*) FROM bench_peer_items")
            new = next(_ids)
            await conn.execute("INSERT INTO bench_peer_items (id, name) VALUES ($1, $2)", new, f"item-{new}")

    return operation


def with_sqlalchemy(factory: async_sessionmaker[AsyncSession]) -> Operation:
    async def operation(key: int) -> None:
        async with factory() as session, session.begin():
            assert await session.get(PeerItem, key) is not None
            page = select(PeerItem).order_by(PeerItem.id).limit(PAGE).offset(_offset(key))
            list((await session.scalars(page)).all())
            await session.scalar(select(func.count()).select_from(PeerItem))
            new = next(_ids)
            session.add(PeerItem(id=new, name=f"item-{new}"))

    return operation


def with_advanced_alchemy(factory: async_sessionmaker[AsyncSession]) -> Operation:
    async def operation(key: int) -> None:
        async with factory() as session:
            repository = AdvancedAlchemyItems(session=session)
            await repository.get(key)
            await repository.list_and_count(LimitOffset(limit=PAGE, offset=_offset(key)), OrderBy("id", "asc"))
            new = next(_ids)
            await repository.add(PeerItem(id=new, name=f"item-{new}"))
            await session.commit()

    return operation


def with_keel(uow: PeerUnitOfWork) -> Operation:
    async def operation(key: int) -> None:
        async with uow:
            await uow.items.get(key)
            await uow.items.paginate(page=_offset(key) // PAGE + 1, size=PAGE, order_by="id")
            new = next(_ids)
            uow.items.add(PeerItem(id=new, name=f"item-{new}"))
            await uow.commit()

    return operation


async def timed(operation: Operation, keys: count[int], ops: int) -> float:
    started = time.perf_counter()
    for _ in range(ops):
        await operation(next(keys) % ROWS)
    return ops / (time.perf_counter() - started)


async def run(url: str, rounds: int, ops: int) -> dict[str, list[float]]:
    await ensure_database(url)
    engine, plain = keel_engine(url), plain_engine(url)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2, server_settings={"synchronous_commit": "off"})
    try:
        async with engine.begin() as conn:
            await conn.run_sync(PeerItem.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
            await conn.run_sync(PeerItem.__table__.create)  # type: ignore[attr-defined]
            rows = [{"id": i, "name": f"item-{i}"} for i in range(ROWS)]
            await conn.execute(PeerItem.__table__.insert(), rows)  # type: ignore[attr-defined]
        factory = plain_session_factory(plain)
        sides = {
            "raw asyncpg": with_asyncpg(pool),
            "hand-written SQLAlchemy": with_sqlalchemy(factory),
            "advanced-alchemy": with_advanced_alchemy(factory),
            "keel": with_keel(PeerUnitOfWork(create_session_factory(engine))),
        }
        keys = count()
        for operation in sides.values():  # warm pools, statement caches and the mappers
            await timed(operation, keys, max(ops // 5, 10))
        results: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                results[name].append(await timed(sides[name], keys, ops))
        return results
    finally:
        await pool.close()
        await engine.dispose()
        await plain.dispose()


def report(url: str, results: dict[str, list[float]], rounds: int, ops: int) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    print(
        f"peers: get + page of {PAGE} with count + insert, commit; {rounds} interleaved rounds x {ops} ops on {shown}"
    )
    print(f"{'side':<28}{'median ops/s':>14}{'min':>10}{'max':>10}")
    for name, values in results.items():
        print(f"{name:<28}{statistics.median(values):>14.0f}{min(values):>10.0f}{max(values):>10.0f}")
    for peer, label in (
        ("advanced-alchemy", "advanced-alchemy"),
        ("hand-written SQLAlchemy", "hand-written SQLAlchemy"),
        ("raw asyncpg", "raw asyncpg"),
    ):
        ratios = sorted(k / p for k, p in zip(results["keel"], results[peer], strict=True))
        spread = f"middle half {ratios[len(ratios) // 4]:.3f}..{ratios[(3 * len(ratios)) // 4]:.3f}"
        print(f"keel / {label} = {statistics.median(ratios):.3f}x (median of per-round ratios, {spread})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per round and side")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 20)
    ops = args.ops or (20 if args.quick else 200)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    report(url, asyncio.run(run(url, rounds, ops)), rounds, ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
