"""Loading an event-sourced aggregate of 1,000 events, with and without a snapshot.

Without: ``EventSourcedRepository.load`` reads and replays all 1,000 events.
With: it reads the snapshot taken at version 1,000 (and an empty tail).
Rounds alternate between the two.

    python -m benchmarks.event_store_load            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.event_store_load --quick    # a short smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import ClassVar

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
from keel import DomainEvent
from keel.event_store import EventSourcedAggregate, EventSourcedRepository, SqlAlchemyEventStore
from keel.infrastructure.database import create_session_factory


class Dog(EventSourcedAggregate):
    stream_prefix: ClassVar[str] = "dog"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.tricks = 0

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, Registered):
            self.name = event.name
        elif isinstance(event, TrickAdded):
            self.tricks += 1


class SnapshottedDogs(EventSourcedRepository[Dog]):
    aggregate_type = Dog
    snapshot_every = 1_000


async def run(url: str, rounds: int, loads: int, events: int) -> dict[str, list[float]]:
    await ensure_database(url)
    engine = keel_engine(url)
    try:
        await reset_tables(engine)
        store = SqlAlchemyEventStore(create_session_factory(engine))
        plain, snapshotted = EventSourcedRepository(store, Dog), SnapshottedDogs(store)
        dog = Dog("rex")
        dog.record(Registered(name="rex"))
        for _ in range(events - 1):
            dog.record(TrickAdded(trick="roll"))
        await snapshotted.save(dog)  # crosses a multiple of snapshot_every: the snapshot is taken

        async def load(repository: EventSourcedRepository[Dog]) -> float:
            with no_gc():
                started = time.perf_counter()
                for _ in range(loads):
                    loaded = await repository.load("rex")
                    assert loaded is not None
                    assert loaded.tricks == events - 1
                elapsed = time.perf_counter() - started
            return loads / elapsed

        sides = {"full replay (loads/s)": plain, "snapshot + tail (loads/s)": snapshotted}
        for repository in sides.values():
            await load(repository)
        results: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(rounds):
            for name in alternate(list(sides), round_):
                results[name].append(await load(sides[name]))
        return results
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--loads", type=int, default=None, help="loads per round and side")
    parser.add_argument("--events", type=int, default=1_000, help="events in the aggregate's stream")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 10)
    loads = args.loads or (3 if args.quick else 20)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    results = asyncio.run(run(url, rounds, loads, args.events))
    table(
        f"event_store_load: an aggregate of {args.events} events, {rounds} rounds x {loads} loads on {shown(url)}",
        results,
        "loads/s",
    )
    names = list(results)
    ratio(results, names[1], names[0], "snapshot / full replay")
    return 0


if __name__ == "__main__":
    sys.exit(main())
