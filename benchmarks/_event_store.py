"""Shared parts of the event store benchmarks: database, engines, tables, reporting.

Not a benchmark itself (the leading underscore keeps it out of the smoke test).
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import DomainEvent
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine
from keel.orm import keel_metadata

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"


class Registered(DomainEvent):
    message_type: ClassVar[str] = "bench.Registered"
    name: str


class TrickAdded(DomainEvent):
    message_type: ClassVar[str] = "bench.TrickAdded"
    trick: str


async def ensure_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist yet; commits skip the WAL flush wait.

    ``synchronous_commit = off`` is set on the database, so every client of
    it (keel, asyncpg, the ``eventsourcing`` library's psycopg pool) gets it
    alike: the disk wait at each commit only adds noise to the comparison.
    """
    target = make_url(url)
    import asyncpg

    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database):
            await conn.execute(f'CREATE DATABASE "{target.database}"')  # name from our own settings, not input
        await conn.execute(f'ALTER DATABASE "{target.database}" SET synchronous_commit = off')
    finally:
        await conn.close()


def keel_engine(url: str, pool_size: int = 2, *, pre_ping: bool = False) -> AsyncEngine:
    """keel's engine. Without ``pool_pre_ping`` by default, like the ``eventsourcing`` library's pool:
    on asyncpg a ping is three round trips (BEGIN, an empty query, ROLLBACK) per checkout,
    more than a whole standalone append.
    """
    settings = DatabaseSettings(url=url, pool_size=pool_size, max_connections=pool_size + 2, pool_pre_ping=pre_ping)
    engine = create_engine(settings)
    event.listen(engine.sync_engine, "connect", _no_synchronous_commit)
    return engine


def _no_synchronous_commit(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit = off")
    cursor.close()


async def reset_tables(engine: AsyncEngine) -> None:
    """keel's tables, created afresh (with the event table's triggers)."""
    async with engine.begin() as conn:
        await conn.run_sync(keel_metadata.drop_all)
        await conn.run_sync(keel_metadata.create_all)


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def table(title: str, results: dict[str, list[float]], unit: str) -> None:
    print(title)
    print(f"{'variant':<44}{'median ' + unit:>18}{'min':>12}{'max':>12}")
    for name, values in results.items():
        print(f"{name:<44}{statistics.median(values):>18.0f}{min(values):>12.0f}{max(values):>12.0f}")


def ratio(results: dict[str, list[float]], numerator: str, denominator: str, what: str, target: str = "") -> float:
    """Print and return the median of the per-round ratios ``numerator / denominator``."""
    ratios = sorted(n / d for n, d in zip(results[numerator], results[denominator], strict=True))
    value = statistics.median(ratios)
    spread = f"middle half {ratios[len(ratios) // 4]:.2f}..{ratios[(3 * len(ratios)) // 4]:.2f}"
    suffix = f"; target {target}" if target else ""
    print(f"{what} = {value:.2f}x (median of per-round ratios, {spread}{suffix})")
    return value


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect, then keep the cyclic GC off while timing (what ``timeit`` does by default).

    A collection's cost grows with everything alive in the process (the
    prepared input of both sides included), not with the work timed; left
    on, it lands on whichever side happens to cross the allocation threshold.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alternate(names: list[str], round_: int) -> list[str]:
    """The variants in this round's order: which goes first alternates."""
    return names if round_ % 2 == 0 else list(reversed(names))


Timer = Callable[[], float]
