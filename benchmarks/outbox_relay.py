"""What the transactional outbox costs: at commit, and from commit to publish.

Two measurements in one run, on PostgreSQL:

1. **Commit cost.** One operation = load an aggregate by key, record an
   event, commit. Without the outbox the event is only collected; with it the
   unit of work also writes its ``keel_outbox`` row and sends ``NOTIFY`` (one
   statement). Rounds rotate through the variants (and which goes first).
2. **Commit to publish.** ``--producers`` tasks commit ``--events`` events in
   all while one relay in the same process publishes them to an in-process
   bus that notes the time of each publish. Throughput is events / time from
   the first commit to the last publish; latency is per event, from the end
   of its ``commit()`` to its publish. Three variants: the relay woken by
   LISTEN/NOTIFY, the relay polling (``--poll-interval``), and the ceiling:
   no outbox, each producer publishing its event itself right after its
   commit.

    python -m benchmarks.outbox_relay            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.outbox_relay --quick    # a short smoke run

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

from sqlalchemy import String, delete, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks.uow_overhead import _no_synchronous_commit, ensure_database
from keel import AggregateRoot, DomainEvent, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.config import DatabaseSettings, OutboxSettings
from keel.domain.ports import MessageHandler, OutgoingMessage
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, VersionMixin, keel_metadata
from keel.outbox import OutboxRelay, OutboxRouting, OutboxWriter, Route, outbox

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"
ROWS = 64


class Bumped(DomainEvent):
    item: int
    value: int


class BenchCounter(Base, AggregateRoot, VersionMixin):
    __tablename__ = "bench_outbox_counters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[int]

    def bump(self) -> Bumped:
        self.value += 1
        bumped = Bumped(item=self.id, value=self.value)
        self.record(bumped)
        return bumped


class BenchUnitOfWork(SqlAlchemyUnitOfWork):
    counters: SqlAlchemyRepository[BenchCounter]


ROUTES = OutboxRouting({Bumped: Route("bench_bumped", ordering_key=lambda e: str(e.item))})


class TimingBus:
    """An in-process bus that notes when each message was published."""

    def __init__(self) -> None:
        self.published: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0

    async def publish(self, message: OutgoingMessage) -> str:
        self.published.setdefault(message.message_id, time.perf_counter())
        if len(self.published) >= self.expected:
            self.done.set()
        return message.message_id

    async def subscribe(self, topic: str, subscription: str, handler: MessageHandler, **options: object) -> object:
        raise NotImplementedError

    async def close(self) -> None:
        """Nothing to release."""


def bench_engine(url: str) -> AsyncEngine:
    engine = create_engine(DatabaseSettings(url=url, pool_size=12, max_connections=24))
    # The WAL flush at each commit costs every variant the same disk wait and only adds noise.
    event.listen(engine.sync_engine, "connect", _no_synchronous_commit)
    return engine


async def prepare(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(keel_metadata.create_all)
        await conn.run_sync(BenchCounter.__table__.drop, checkfirst=True)  # type: ignore[attr-defined]
        await conn.run_sync(BenchCounter.__table__.create)  # type: ignore[attr-defined]
        await conn.execute(
            BenchCounter.__table__.insert(),  # type: ignore[attr-defined]
            [{"id": i, "name": f"c-{i}", "value": 0, "version": 1} for i in range(ROWS)],
        )
        await conn.execute(delete(outbox))


# --- 1. commit cost -------------------------------------------------------------------------


Operation = Callable[[int], Awaitable[None]]


def committing(
    session_factory: async_sessionmaker[AsyncSession], *, with_outbox: bool, notify: bool = True
) -> Operation:
    writers = [OutboxWriter(ROUTES, notify=notify)] if with_outbox else []
    uow = BenchUnitOfWork(session_factory, participants=writers)

    async def operation(key: int) -> None:
        async with uow:
            (await uow.counters.get(key)).bump()
            await uow.commit()
        for _ in uow.collect_new_events():
            pass

    return operation


async def commit_rounds(engine: AsyncEngine, rounds: int, ops: int) -> dict[str, list[tuple[float, float]]]:
    """Per variant and round: (operations per second, client CPU microseconds per operation)."""
    factory = create_session_factory(engine)
    variants = {"commit, no outbox": committing(factory, with_outbox=False)}
    variants["commit + outbox row"] = committing(factory, with_outbox=True)
    variants["commit + row, no NOTIFY"] = committing(factory, with_outbox=True, notify=False)
    keys = cycle(range(ROWS))
    for operation in variants.values():
        for _ in range(max(ops // 5, 10)):
            await operation(next(keys))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(ops):
                await variants[name](next(keys))
            wall, used = time.perf_counter() - started, time.process_time() - cpu
            results[name].append((ops / wall, used / ops * 1e6))
        async with engine.begin() as conn:
            await conn.execute(delete(outbox))  # the relay is not running: keep the table small
    return results


#: The sides ``benchmarks.instructions`` counts (the commit alone), baseline first.
SIDES = ("no outbox", "outbox row + NOTIFY", "outbox row, no NOTIFY")


async def run_side(url: str, side: str, warmup: int, ops: int) -> None:
    """Run ``warmup`` then ``ops`` commits of one side alone (for ``benchmarks.instructions``)."""
    await ensure_database(url)
    engine = bench_engine(url)
    try:
        await prepare(engine)
        operation = committing(create_session_factory(engine), with_outbox=side != SIDES[0], notify=side == SIDES[1])
        keys = cycle(range(ROWS))
        for _ in range(warmup + ops):
            await operation(next(keys))
    finally:
        await engine.dispose()


# --- 2. commit to publish ---------------------------------------------------------------------


async def pipeline(
    engine: AsyncEngine, mode: str, events: int, producers: int, poll: float
) -> tuple[float, list[float]]:
    """(events per second, latencies in seconds) for ``mode``: "notify", "polling" or "direct"."""
    async with engine.begin() as conn:
        await conn.execute(delete(outbox))
    factory = create_session_factory(engine)
    bus = TimingBus()
    events = events // producers * producers
    bus.expected = events
    committed: dict[str, float] = {}
    participants = [] if mode == "direct" else [OutboxWriter(ROUTES)]
    relay = None
    task = None
    if mode != "direct":
        settings = OutboxSettings(listen=mode == "notify", poll_interval=poll, batch_size=200)
        relay = OutboxRelay(bus, factory, settings=settings)
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.2)  # listening and idle before the first commit

    async def produce(worker: int) -> None:
        uow = BenchUnitOfWork(factory, participants=participants)
        keys = [k for k in range(ROWS) if k % producers == worker]
        for n in range(events // producers):
            async with uow:
                bumped = (await uow.counters.get(keys[n % len(keys)])).bump()
                await uow.commit()
            committed[str(bumped.event_id)] = time.perf_counter()
            if mode == "direct":
                await bus.publish(
                    OutgoingMessage("bench_bumped", bumped.model_dump_json().encode(), str(bumped.event_id))
                )
            for _ in uow.collect_new_events():
                pass

    started = time.perf_counter()
    await asyncio.gather(*(produce(w) for w in range(producers)))
    await asyncio.wait_for(bus.done.wait(), timeout=120)
    elapsed = max(bus.published.values()) - started
    if relay is not None and task is not None:
        relay.request_stop()
        await task
    latencies = sorted(bus.published[key] - at for key, at in committed.items())
    return len(committed) / elapsed, latencies


LABELS = {"direct": "direct publish (ceiling)", "notify": "outbox, LISTEN/NOTIFY", "polling": "outbox, polling"}


def percentile(values: list[float], fraction: float) -> float:
    return values[min(int(len(values) * fraction), len(values) - 1)]


async def run(url: str, rounds: int, ops: int, events: int, producers: int, poll: float) -> int:
    await ensure_database(url)
    engine = bench_engine(url)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        await prepare(engine)
        commits = await commit_rounds(engine, rounds, ops)
        print(f"outbox_relay on {shown}")
        print(f"1. load, record an event, commit: {rounds} interleaved rounds x {ops} ops")
        print(f"{'variant':<28}{'median ops/s':>14}{'min':>8}{'max':>8}{'client CPU us/op':>18}")
        for name, values in commits.items():
            rates = [rate for rate, _ in values]
            cpu = statistics.median(used for _, used in values)
            print(f"{name:<28}{statistics.median(rates):>14.0f}{min(rates):>8.0f}{max(rates):>8.0f}{cpu:>18.0f}")
        without, with_, quiet = commits.values()
        for name, side in (("commit with outbox / without", with_), ("without NOTIFY / without outbox", quiet)):
            by_wall = statistics.median(w[0] / b[0] for w, b in zip(side, without, strict=True))
            by_cpu = statistics.median(b[1] / w[1] for w, b in zip(side, without, strict=True))
            print(f"{name} = {by_wall:.3f}x by wall clock (median of per-round ratios), {by_cpu:.3f}x by client CPU")
        print("target for the commit with outbox rows: >= 0.9x")
        print(f"2. commit -> publish: {events} events from {producers} concurrent producers; polling every {poll} s")
        print(f"{'variant':<28}{'events/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        throughput: dict[str, float] = {}
        for mode in ("direct", "notify", "polling"):
            await pipeline(engine, mode, max(events // 10, producers), producers, poll)  # warm-up
            rate, latencies = await pipeline(engine, mode, events, producers, poll)
            throughput[mode] = rate
            p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
            print(f"{LABELS[mode]:<28}{rate:>10.0f}{p50:>10.1f}{p99:>10.1f}")
        notify, polling = throughput["notify"] / throughput["direct"], throughput["polling"] / throughput["direct"]
        print(f"relay (LISTEN/NOTIFY) / direct throughput = {notify:.3f}x (target >= 0.5x)")
        print(f"relay (polling) / direct throughput = {polling:.3f}x")
    finally:
        await engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="commit-cost rounds")
    parser.add_argument("--ops", type=int, default=None, help="commits per round and variant")
    parser.add_argument("--events", type=int, default=None, help="events per commit-to-publish variant")
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=1.0, help="the polling relay's interval, seconds")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 30)
    ops = args.ops or (20 if args.quick else 100)
    events = args.events or (200 if args.quick else 4000)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    return asyncio.run(run(url, rounds, ops, events, args.producers, args.poll_interval))


if __name__ == "__main__":
    sys.exit(main())
