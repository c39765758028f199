"""Load soak: many HTTP clients against the allocation API under uvicorn, invariants checked in the database.

The example app runs in a uvicorn process of its own on a free loopback port,
with ``Allocated`` routed to the outbox (``KEEL_OUTBOX__ROUTES``) and keel's
generic relay (``python -m keel outbox relay``) beside it. ``CONNECTIONS``
httpx clients then allocate (and read allocations back) until a request
count or a time limit is reached, whichever comes first. At the end, from
the database: no batch is allocated past its size, every order answered 202
is allocated at most once and is in the read model exactly when it is
allocated, an order left unallocated really found too little stock, every
request was answered, and the outbox drains with nothing parked.
Throughput and p50/p99 latency are reported.

With the Pub/Sub emulator (``PUBSUB_EMULATOR_HOST``, or ``--bus pubsub``)
the relay publishes there, in a project of its own, and the example's
consumer (``python -m examples.allocation.consumer``) runs too; during the
load ``change_batch_quantity`` messages resize the batches of two skus the
clients also order, a third of them published twice with the same
``event_id`` (the inbox key), and a subscription of the soak's own collects
``line_allocated``. Then, once drained (polled with a deadline): each
distinct message has exactly one inbox row, one processed-command record
and one succeeded audit row (the duplicates were refused), every published
``line_allocated`` row arrived and every allocation's message is among them
(redeliveries counted). Without the emulator the relay publishes on the
in-memory bus and nothing is consumed (``benchmarks/_soak_pubsub.py``).

    python -m benchmarks.soak                 # 40 connections, 60 s
    python -m benchmarks.soak --quick         # 20 connections, 10 s
    python -m benchmarks.soak --seconds 300 --connections 50 --bus pubsub

``KEEL_BENCH_DATABASE_URL`` names the PostgreSQL database (created if absent,
its example and keel tables re-created). ``tests/soak/`` runs the short form
(20 connections, 15 s or 3,000 requests) and, with ``KEEL_SOAK=1``, the long
form (50 connections, 300 s).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from examples.allocation.consumer import CONSUMER
from examples.allocation.messages import CHANGE_BATCH_QUANTITY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks import _soak_pubsub
from benchmarks._soak_pubsub import RESIZED

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench_soak"
#: sku -> batch sizes. Plenty of stock for most, one scarce sku so some orders find none and contend hard.
STOCK = {**{f"SKU-{n}": (400, 400) for n in range(8)}, "SCARCE": (15, 10), **RESIZED}
START_TIMEOUT = 60.0
#: Batches whose allocated order lines add up to more than the batch holds.
OVERSOLD = (
    "SELECT b.reference FROM batches b LEFT JOIN allocations a ON a.batch_id = b.id "
    "LEFT JOIN order_lines l ON l.id = a.orderline_id GROUP BY b.reference, b.purchased_quantity "
    "HAVING b.purchased_quantity - coalesce(sum(l.qty), 0) < 0"
)
ALLOCATIONS_PER_ORDER = (
    "SELECT l.orderid, count(*) FROM order_lines l JOIN allocations a ON a.orderline_id = l.id GROUP BY l.orderid"
)
#: The most any one batch of a sku still has: an order of more than this could not be allocated.
MOST_LEFT_PER_SKU = (
    "SELECT b.sku, max(b.purchased_quantity - coalesce(u.used, 0)) FROM batches b LEFT JOIN "
    "(SELECT a.batch_id, sum(l.qty) AS used FROM allocations a JOIN order_lines l "
    "ON l.id = a.orderline_id GROUP BY a.batch_id) u ON u.batch_id = b.id GROUP BY b.sku"
)
DRAIN_TIMEOUT = 120.0


@dataclass
class SoakReport:
    """What a soak run measured and found; ``violations`` is empty when every invariant held."""

    requests: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    allocated_orders: int = 0
    unallocated_orders: int = 0
    outbox_published: int = 0
    #: ``memory`` (the relay publishes in its own process) or ``pubsub`` (the emulator, with the consumer).
    bus: str = "memory"
    #: Distinct change_batch_quantity messages, how many times they were published in all, how many were applied.
    messages_published: int = 0
    messages_publications: int = 0
    messages_applied: int = 0
    #: Distinct line_allocated messages the test subscription received, and deliveries beyond the first.
    line_allocated_received: int = 0
    line_allocated_redelivered: int = 0
    #: Seconds until every process was ready, and from the end of the load until everything was drained.
    start_seconds: float = 0.0
    drain_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100)[p - 1] if len(self.latencies_ms) > 1 else 0.0

    def _consumed_lines(self) -> list[str]:
        if self.bus != "pubsub":
            return ["consumed messages: none (in-memory bus; PUBSUB_EMULATOR_HOST runs the consumer on Pub/Sub)"]
        return [
            f"change_batch_quantity consumed: {self.messages_published} messages published "
            f"{self.messages_publications} times ({self.messages_publications - self.messages_published} duplicates), "
            f"{self.messages_applied} applied once each",
            f"line_allocated received: {self.line_allocated_received} messages "
            f"({self.outbox_published - self.allocated_orders} beyond one per allocation: reallocations), "
            f"{self.line_allocated_redelivered} delivered more than once",
        ]

    def lines(self) -> list[str]:
        return [
            f"requests: {self.requests} in {self.seconds:.1f} s = {self.throughput:.0f} req/s",
            f"latency: p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms",
            f"statuses: {dict(sorted(self.statuses.items()))}",
            f"orders allocated: {self.allocated_orders}, left unallocated (no stock): {self.unallocated_orders}",
            f"outbox rows published: {self.outbox_published}",
            *self._consumed_lines(),
            f"phases: start {self.start_seconds:.1f} s, load {self.seconds:.1f} s, drain {self.drain_seconds:.1f} s",
            f"invariants: {'all held' if not self.violations else '; '.join(self.violations)}",
        ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def prepare(url: str) -> None:
    """Create the database if absent and re-create the example's and keel's tables in it (standalone runs)."""
    import examples.allocation.orm  # noqa: F401  (puts the example's tables on Base.metadata)

    from benchmarks._event_store import ensure_database
    from keel.orm import Base, keel_metadata

    await ensure_database(url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for metadata in (Base.metadata, keel_metadata):
                await conn.run_sync(metadata.drop_all)
                await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _tail(log: Path, size: int = 3000) -> str:
    return log.read_text(errors="replace")[-size:]


async def _wait_for(log: Path, marker: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while marker not in _tail(log, 1_000_000):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.name} did not start:\n{_tail(log)}")
        await asyncio.sleep(0.05)


def _batches(skus: Mapping[str, tuple[int, ...]]) -> list[tuple[str, str, int]]:
    """(reference, sku, size) of every batch the soak creates."""
    return [(f"{sku}-b{n}", sku, qty) for sku, sizes in skus.items() for n, qty in enumerate(sizes)]


async def _add_batches(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for ref, sku, qty in _batches(STOCK):
            (await client.post("/add_batch", json={"ref": ref, "sku": sku, "qty": qty, "eta": None})).raise_for_status()


async def _wait_until(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not await asyncio.to_thread(check):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


async def _drive(base_url: str, connections: int, seconds: float, max_requests: int, report: SoakReport) -> set[str]:
    """Allocate (one read per three writes) from ``connections`` clients; the orders answered 202."""
    accepted: set[str] = set()
    recent: list[str] = []
    numbers = itertools.count()
    skus = list(STOCK)
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def worker(rng: random.Random) -> None:
            while time.monotonic() < stop_at:
                number = next(numbers)
                if number >= max_requests:
                    return
                orderid = f"order-{number}"
                started = time.perf_counter()
                if number % 4 == 3 and recent:
                    response = await client.get(f"/allocations/{rng.choice(recent[-50:])}")
                else:
                    body = {"orderid": orderid, "sku": rng.choice(skus), "qty": rng.randint(1, 3)}
                    response = await client.post("/allocate", json=body)
                    if response.status_code == 202:
                        accepted.add(orderid)
                        recent.append(orderid)
                report.latencies_ms.append((time.perf_counter() - started) * 1000)
                key = f"{response.request.method} {response.status_code}"
                report.statuses[key] = report.statuses.get(key, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(random.Random(seed)) for seed in range(connections)))
        report.seconds = time.perf_counter() - began
    report.requests = len(report.latencies_ms)
    return accepted


async def _check(engine: AsyncEngine, accepted: set[str], resized: set[str], report: SoakReport) -> None:
    """Every invariant, from the database; violations are appended to the report.

    An order of a sku in ``resized`` may be left unallocated with stock now free: a resize deallocated
    lines or added stock after it found none. The other invariants hold for those skus too.
    """
    async with engine.connect() as conn:
        over = (await conn.execute(text(OVERSOLD))).scalars().all()
        allocated: dict[str, int] = dict((await conn.execute(text(ALLOCATIONS_PER_ORDER))).all())
        viewed: dict[str, int] = dict(
            (await conn.execute(text("SELECT orderid, count(*) FROM allocations_view GROUP BY orderid"))).all()
        )
        lines = (await conn.execute(text("SELECT orderid, sku, qty FROM order_lines"))).all()
        left: dict[str, int] = dict((await conn.execute(text(MOST_LEFT_PER_SKU))).all())
    if over:
        report.violations.append(f"batches allocated past their size: {sorted(over)}")
    doubled = sorted(o for o, n in allocated.items() if n != 1)
    if doubled:
        report.violations.append(f"orders allocated more than once: {doubled[:10]}")
    if set(allocated) - accepted:
        report.violations.append(f"allocations of orders never answered 202: {sorted(set(allocated) - accepted)[:10]}")
    if dict.fromkeys(allocated, 1) != viewed:
        report.violations.append("the read model differs from the allocations (missing or doubled rows)")
    orders = {orderid: (sku, qty) for orderid, sku, qty in lines}
    unallocated = accepted - set(allocated)
    lost = sorted(
        o
        for o in unallocated
        if o in orders and orders[o][0] not in resized and left.get(orders[o][0], 0) >= orders[o][1]
    )
    if lost:
        report.violations.append(f"orders unallocated although a batch still has the stock: {lost[:10]}")
    report.allocated_orders = len(allocated)
    report.unallocated_orders = len(unallocated)
    answered = sum(report.statuses.values())
    if answered != report.requests or any(not k.endswith((" 200", " 202", " 404")) for k in report.statuses):
        report.violations.append(f"requests not answered with 200/202/404: {report.statuses}")


async def _outbox_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(text("SELECT status, count(*) FROM keel_outbox GROUP BY status"))).all())


async def _drain(
    engine: AsyncEngine, pubsub: _soak_pubsub.PubSub | None, changes: _soak_pubsub.ChangePublisher | None
) -> bool:
    """Wait (with a deadline) until no outbox row is pending and, on Pub/Sub, every message was consumed."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        settled = not (await _outbox_counts(engine)).get("pending", 0)
        if settled and pubsub is not None and changes is not None:
            settled = await _soak_pubsub.consumed(engine, pubsub, changes)
        if settled or time.monotonic() > deadline:
            return settled
        await asyncio.sleep(0.2)


async def _check_outbox(engine: AsyncEngine, report: SoakReport) -> None:
    """Every row published, none parked; one per allocation (more on Pub/Sub, where resizes reallocate)."""
    counts = await _outbox_counts(engine)
    report.outbox_published = counts.get("published", 0)
    if set(counts) - {"published"}:
        report.violations.append(f"outbox not drained (or rows parked): {counts}")
    reallocating = report.bus == "pubsub"
    if report.outbox_published < report.allocated_orders or (
        not reallocating and report.outbox_published != report.allocated_orders
    ):
        report.violations.append(
            f"{report.outbox_published} outbox rows published for {report.allocated_orders} allocations"
        )


def _environment(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "KEEL_DATABASE__URL": url,
        "KEEL_DATABASE__POOL_SIZE": "10",
        "KEEL_DATABASE__MAX_CONNECTIONS": "20",
        "KEEL_OUTBOX__ROUTES": '{"Allocated": "line_allocated"}',
        "KEEL_EVENT_BUS__BACKEND": "memory",
        "KEEL_OUTBOX__POLL_INTERVAL": "0.2",
        # Many orders on one scarce product: retry a version conflict often and wait little.
        "KEEL_BUS__MAX_ATTEMPTS": "200",
        "KEEL_BUS__BACKOFF_INITIAL": "0.002",
        "KEEL_BUS__BACKOFF_MAX": "0.05",
    }


async def soak(
    url: str, *, connections: int, seconds: float, max_requests: int, logs: Path, emulator: str | None = None
) -> SoakReport:
    """Run the API and the relay against ``url`` (tables already created), drive load, check every invariant.

    With ``emulator`` (a Pub/Sub emulator's ``host:port``) the relay publishes there, in a project of its
    own, the example's consumer runs too, and change_batch_quantity messages are published during the
    load (see :mod:`benchmarks._soak_pubsub`); without it the relay publishes on the in-memory bus.
    ``logs`` (an existing directory) receives the processes' output.
    """
    if emulator is None:
        return await _soak(url, connections, seconds, max_requests, logs, None)
    with _soak_pubsub.connected(emulator) as pubsub:
        return await _soak(url, connections, seconds, max_requests, logs, pubsub)


async def _soak(
    url: str, connections: int, seconds: float, max_requests: int, logs: Path, pubsub: _soak_pubsub.PubSub | None
) -> SoakReport:
    env = _environment(url)
    if pubsub is not None:
        env.update(_soak_pubsub.environment(pubsub.emulator, pubsub.project))
    report = SoakReport(bus="memory" if pubsub is None else "pubsub")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    api_log, relay_log, consumer_log = logs / "uvicorn.log", logs / "relay.log", logs / "consumer.log"
    command = [sys.executable, "-m", "uvicorn", "examples.allocation.api:create_app", "--factory"]
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    engine = create_async_engine(url)
    began = time.monotonic()
    try:
        # All three start at once (the soak's line_allocated subscription exists already); the
        # change_batch_quantity messages wait for the consumer's subscription, or it would miss them.
        api = _start([*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"], env, api_log)
        processes.append((api, api_log))
        processes.append((_start([sys.executable, "-m", "keel", "outbox", "relay"], env, relay_log), relay_log))
        if pubsub is not None:
            consumer = _start([sys.executable, "-m", "examples.allocation.consumer"], env, consumer_log)
            processes.append((consumer, consumer_log))
            await _wait_for(consumer_log, "consuming", consumer)
            await _wait_until(lambda: pubsub.subscription_exists(CONSUMER), "the consumer's subscription", consumer)
        await _wait_for(api_log, "Application startup complete", api)
        await _add_batches(base_url)
        report.start_seconds = time.monotonic() - began

        changes = None
        driving = asyncio.create_task(_drive(base_url, connections, seconds, max_requests, report))
        if pubsub is not None:
            resizable = [ref for ref, _, _ in _batches(RESIZED)]
            changes = _soak_pubsub.ChangePublisher(pubsub.publisher, pubsub.topic(CHANGE_BATCH_QUANTITY), resizable)
            done = asyncio.Event()
            driving.add_done_callback(lambda _: done.set())
            try:
                await changes.run(done)
            except BaseException:
                driving.cancel()
                raise
        accepted = await driving

        began = time.monotonic()
        if not await _drain(engine, pubsub, changes):
            report.violations.append(f"not drained within {DRAIN_TIMEOUT:.0f} s (outbox, inbox or line_allocated)")
        report.drain_seconds = time.monotonic() - began
        resized = set(RESIZED) if changes is not None and changes.sent else set()
        await _check(engine, accepted, resized, report)
        await _check_outbox(engine, report)
        if pubsub is not None and changes is not None:
            await _soak_pubsub.check_consumed(engine, pubsub, changes, report)
        for process, log in processes:
            if process.poll() is not None:
                report.violations.append(f"{log.stem} exited early:\n{_tail(log)}")
    finally:
        for process, _ in reversed(processes):
            _stop(process)
        await engine.dispose()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (20 connections, 10 s)")
    parser.add_argument("--connections", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--requests", type=int, default=1_000_000, help="stop after this many requests")
    parser.add_argument(
        "--bus",
        choices=("auto", "memory", "pubsub"),
        default="auto",
        help="pubsub: the emulator at PUBSUB_EMULATOR_HOST, with the consumer; auto: pubsub when that is set",
    )
    args = parser.parse_args(argv)
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST") or None
    if args.bus == "pubsub" and emulator is None:
        parser.error("--bus pubsub needs PUBSUB_EMULATOR_HOST (a running Pub/Sub emulator's host:port)")
    if args.bus == "memory":
        emulator = None
    connections = args.connections or (20 if args.quick else 40)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    asyncio.run(prepare(url))
    logs = Path(tempfile.mkdtemp(prefix="keel-soak-"))
    report = asyncio.run(
        soak(url, connections=connections, seconds=seconds, max_requests=args.requests, logs=logs, emulator=emulator)
    )
    processes = "uvicorn + relay" if emulator is None else f"uvicorn + relay + consumer, Pub/Sub emulator at {emulator}"
    print(f"soak: {connections} connections for up to {seconds:g} s against the allocation API ({processes})")
    for line in report.lines():
        print(f"  {line}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
