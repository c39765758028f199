"""``Repository.get`` through the Redis cache vs straight from PostgreSQL, in one run.

One operation = open a unit of work, ``get`` one entity by primary key,
leave. The cached side's repository sets ``cache_ttl`` and its unit of work
holds a :class:`keel.cache.RedisCache`; after the warm-up every get is a hit
(one Redis round trip, no SQL). The other side is the same repository without
a cache (one ``SELECT``). Same engine, same rows; rounds alternate between
the sides (and which goes first) so drift in the machine's speed hits both.
A third line times the miss path (lookup, ``SELECT``, fill) on a namespace
flushed before every operation.

    python -m benchmarks.cache            # PostgreSQL keel_test on 127.0.0.1, Redis on 6379
    python -m benchmarks.cache --quick    # a short smoke run

``KEEL_BENCH_DATABASE_URL`` and ``KEEL_BENCH_REDIS_URL`` point it elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from itertools import cycle

from sqlalchemy import String
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks.uow_overhead import ensure_database, keel_engine
from keel import AggregateRoot, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.cache import RedisCache
from keel.infrastructure.database import create_session_factory
from keel.orm import Base, TimestampMixin, VersionMixin

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
ROWS = 100


class CachedThing(Base, AggregateRoot, VersionMixin, TimestampMixin):
    __tablename__ = "bench_cache_things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[int]


class CachedThings(SqlAlchemyRepository[CachedThing]):
    cache_ttl = 600


class Things(SqlAlchemyRepository[CachedThing]):
    pass


class CachedUnitOfWork(SqlAlchemyUnitOfWork):
    things: CachedThings


class PlainUnitOfWork(SqlAlchemyUnitOfWork):
    things: Things


Operation = Callable[[int], Awaitable[None]]


def reading(uow: SqlAlchemyUnitOfWork, before: Callable[[], Awaitable[None]] | None = None) -> Operation:
    async def operation(key: int) -> None:
        if before is not None:
            await before()
        async with uow:
            await uow.things.get(key)  # type: ignore[attr-defined]

    return operation


async def timed(operation: Operation, keys: cycle[int], ops: int) -> float:
    started = time.perf_counter()
    for _ in range(ops):
        await operation(next(keys))
    return ops / (time.perf_counter() - started)


async def run(url: str, redis_url: str, rounds: int, ops: int) -> tuple[dict[str, list[float]], RedisCache]:
    await ensure_database(url)
    engine = keel_engine(url)
    cache = RedisCache(redis_url, namespace=f"keel-bench-{uuid.uuid4().hex[:8]}")
    cold = RedisCache(redis_url, namespace=f"keel-bench-cold-{uuid.uuid4().hex[:8]}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(CachedThing.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
            await conn.run_sync(CachedThing.__table__.create)  # type: ignore[attr-defined]
        factory = create_session_factory(engine)
        async with PlainUnitOfWork(factory) as uow:
            uow.things.add_many(CachedThing(id=i, name=f"thing-{i}", value=i) for i in range(ROWS))
            await uow.commit()
        variants = {
            "no cache (SELECT)": reading(PlainUnitOfWork(factory)),
            "Redis cache, hits": reading(CachedUnitOfWork(factory, cache=cache)),
        }
        keys = cycle(range(ROWS))
        for operation in variants.values():  # warm up pools, statement caches, and fill the cache
            await timed(operation, keys, max(ops, ROWS * 2))
        misses = reading(CachedUnitOfWork(factory, cache=cold), before=cold.clear)
        results: dict[str, list[float]] = {name: [] for name in variants}
        results["misses (+ a flush each)"] = []
        names = list(variants)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                results[name].append(await timed(variants[name], keys, ops))
            results["misses (+ a flush each)"].append(await timed(misses, keys, max(ops // 5, 5)))
        return results, cache
    finally:
        await cache.clear()
        await cache.close()
        await cold.close()
        await engine.dispose()


def report(url: str, results: dict[str, list[float]], cache: RedisCache, rounds: int, ops: int) -> float:
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"cache: Repository.get, {rounds} interleaved rounds x {ops} ops on {shown}")
    print(f"{'variant':<24}{'median ops/s':>14}{'min':>10}{'max':>10}")
    for name, values in results.items():
        print(f"{name:<24}{statistics.median(values):>14.0f}{min(values):>10.0f}{max(values):>10.0f}")
    baseline, cached = results["no cache (SELECT)"], results["Redis cache, hits"]
    ratios = sorted(c / b for c, b in zip(cached, baseline, strict=True))
    ratio = statistics.median(ratios)
    spread = f"middle half {ratios[len(ratios) // 4]:.3f}..{ratios[(3 * len(ratios)) // 4]:.3f}"
    print(f"hits: {cache.stats.hits}, misses: {cache.stats.misses}, errors: {cache.stats.errors}")
    print(f"cached / uncached = {ratio:.3f}x (median of per-round ratios, {spread}; a hit must win: > 1.0x)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per round and variant")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 30)
    ops = args.ops or (50 if args.quick else 200)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    redis_url = os.environ.get("KEEL_BENCH_REDIS_URL", DEFAULT_REDIS)
    results, cache = asyncio.run(run(url, redis_url, rounds, ops))
    report(url, results, cache, rounds, ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
