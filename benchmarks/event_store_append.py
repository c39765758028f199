"""keel's event store against the ``eventsourcing`` library (PostgreSQL recorder), appending.

Two workloads, each run by both sides in alternating rounds on the same
database:

* ``streams``: new streams of 10 events, one transaction each (the library
  saves a new aggregate with 10 events);
* ``single``: one event appended to an existing stream per transaction (the
  library saves an aggregate after one more event).

Each side builds its own events (keel: pydantic ``DomainEvent`` objects; the
library: its aggregate's decorated methods), so object construction and
serialisation count on both sides. The library is synchronous; its calls
block the event loop, which nothing else uses meanwhile. The cyclic GC is
off while timing (as ``timeit`` does): a collection lands on whichever side
crosses the threshold and made single rounds swing.

    python -m benchmarks.event_store_append            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.event_store_append --quick    # a short smoke run

``KEEL_BENCH_DATABASE_URL`` points it elsewhere; the database is created if absent.
Needs ``pip install "eventsourcing[postgres]"`` (in keel's ``bench`` and ``dev`` extras).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from benchmarks._event_store import (
    DEFAULT_URL,
    Registered,
    TrickAdded,
    alternate,
    ensure_database,
    keel_engine,
    no_gc,
    ratio,
    reset_tables,
    shown,
    table,
)
from keel.event_store import NO_STREAM, SqlAlchemyEventStore
from keel.infrastructure.database import create_session_factory

EVENTS_PER_STREAM = 10


def library_application(url: str) -> Any:
    """The ``eventsourcing`` application on the same database, with its own table."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Dog(Aggregate):
        @event("Registered")
        def __init__(self, name: str) -> None:
            self.name = name
            self.tricks: list[str] = []

        @event("TrickAdded")
        def add_trick(self, trick: str) -> None:
            self.tricks.append(trick)

    target = make_url(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": target.database or "",
        "POSTGRES_HOST": target.host or "127.0.0.1",
        "POSTGRES_PORT": str(target.port or 5432),
        "POSTGRES_USER": target.username or "postgres",
        "POSTGRES_PASSWORD": target.password or "",
        "CREATE_TABLE": "y",
    }
    app = Application(env=env)
    app.Dog = Dog  # type: ignore[attr-defined]  # handed to the workloads with the app
    return app


class Keel:
    """keel's side: a standalone ``SqlAlchemyEventStore`` on keel's engine."""

    def __init__(self, store: SqlAlchemyEventStore) -> None:
        self.store = store
        self.names = itertools.count()
        self.single_stream = ""
        self.single_version = 0

    async def streams(self, count: int) -> float:
        with no_gc():
            started = time.perf_counter()
            for _ in range(count):
                n = next(self.names)
                batch = [Registered(name=f"dog-{n}"), *(TrickAdded(trick="roll") for _ in range(EVENTS_PER_STREAM - 1))]
                await self.store.append(f"dog-{n}", batch, expected_version=NO_STREAM)
            return count * EVENTS_PER_STREAM / (time.perf_counter() - started)

    async def single(self, count: int) -> float:
        if not self.single_stream:
            self.single_stream = f"dog-single-{next(self.names)}"
            await self.store.append(self.single_stream, [Registered(name="solo")], expected_version=NO_STREAM)
            self.single_version = 1
        with no_gc():
            started = time.perf_counter()
            for _ in range(count):
                await self.store.append(
                    self.single_stream, [TrickAdded(trick="sit")], expected_version=self.single_version
                )
                self.single_version += 1
            return count / (time.perf_counter() - started)


class Library:
    """The ``eventsourcing`` side: ``Application.save`` of an aggregate."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.names = itertools.count()
        self.dog: Any = None

    async def streams(self, count: int) -> float:
        dog_class = self.app.Dog
        with no_gc():
            started = time.perf_counter()
            for _ in range(count):
                dog = dog_class(f"dog-{next(self.names)}")
                for _ in range(EVENTS_PER_STREAM - 1):
                    dog.add_trick("roll")
                self.app.save(dog)
            return count * EVENTS_PER_STREAM / (time.perf_counter() - started)

    async def single(self, count: int) -> float:
        if self.dog is None:
            self.dog = self.app.Dog("solo")
            self.app.save(self.dog)
        with no_gc():
            started = time.perf_counter()
            for _ in range(count):
                self.dog.add_trick("sit")
                self.app.save(self.dog)
            return count / (time.perf_counter() - started)


async def run(url: str, rounds: int, streams: int, singles: int) -> dict[str, list[float]]:
    await ensure_database(url)
    engine = keel_engine(url)
    app = library_application(url)
    try:
        await reset_tables(engine)
        keel, library = Keel(SqlAlchemyEventStore(create_session_factory(engine))), Library(app)
        sides: dict[str, Callable[[str], Any]] = {
            "streams eventsourcing (events/s)": lambda _: library.streams(streams),
            "streams keel (events/s)": lambda _: keel.streams(streams),
            "single eventsourcing (appends/s)": lambda _: library.single(singles),
            "single keel (appends/s)": lambda _: keel.single(singles),
        }
        for side in sides.values():  # warm up pools, caches and prepared statements
            await side("warm-up")
        results: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(rounds):
            for pair in (list(sides)[:2], list(sides)[2:]):
                for name in alternate(pair, round_):
                    results[name].append(await sides[name](name))
        return results
    finally:
        await engine.dispose()
        app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--streams", type=int, default=None, help="new streams of 10 events per round and side")
    parser.add_argument("--singles", type=int, default=None, help="single-event appends per round and side")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 10)
    streams = args.streams or (20 if args.quick else 100)
    singles = args.singles or (20 if args.quick else 200)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    try:
        import eventsourcing.postgres  # noqa: F401
    except ImportError:
        print("event_store_append needs the eventsourcing library: pip install 'eventsourcing[postgres]'")
        return 1
    results = asyncio.run(run(url, rounds, streams, singles))
    table(
        f"event_store_append: {rounds} interleaved rounds of {streams} streams x {EVENTS_PER_STREAM} events "
        f"and {singles} single-event appends on {shown(url)}",
        results,
        "per s",
    )
    names = list(results)
    ratio(results, names[1], names[0], "streams: keel / eventsourcing", ">= 2x")
    ratio(results, names[3], names[2], "single:  keel / eventsourcing", ">= 2x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
