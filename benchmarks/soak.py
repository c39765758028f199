"""Load soak: many HTTP clients against the allocation API under uvicorn, invariants checked in the database.

The example app runs in a uvicorn process of its own on a free loopback port,
with ``Allocated`` routed to the outbox (``KEEL_OUTBOX__ROUTES``) and keel's
generic relay (``python -m keel outbox relay``, in-memory bus) beside it.
``CONNECTIONS`` httpx clients then allocate (and read allocations back) until
a request count or a time limit is reached, whichever comes first. At the
end, from the database: no batch is allocated past its size, every order
answered 202 is allocated at most once and is in the read model exactly when
it is allocated, an order left unallocated really found too little stock,
every request was answered, and the outbox drains (one published row per
allocation). Throughput and p50/p99 latency are reported.

    python -m benchmarks.soak                 # 40 connections, 60 s
    python -m benchmarks.soak --quick         # 20 connections, 10 s
    python -m benchmarks.soak --seconds 300 --connections 50

``KEEL_BENCH_DATABASE_URL`` names the PostgreSQL database (created if absent,
its example and keel tables re-created). ``tests/soak/`` runs the short form.
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench_soak"
#: sku -> batch sizes. Plenty of stock for most, one scarce sku so some orders find none and contend hard.
STOCK = {**{f"SKU-{n}": (400, 400) for n in range(8)}, "SCARCE": (15, 10)}
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
DRAIN_TIMEOUT = 60.0


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
    violations: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100)[p - 1] if len(self.latencies_ms) > 1 else 0.0

    def lines(self) -> list[str]:
        return [
            f"requests: {self.requests} in {self.seconds:.1f} s = {self.throughput:.0f} req/s",
            f"latency: p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms",
            f"statuses: {dict(sorted(self.statuses.items()))}",
            f"orders allocated: {self.allocated_orders}, left unallocated (no stock): {self.unallocated_orders}",
            f"outbox rows published: {self.outbox_published}",
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


async def _drive(base_url: str, connections: int, seconds: float, max_requests: int, report: SoakReport) -> set[str]:
    """Allocate (one read per three writes) from ``connections`` clients; the orders answered 202."""
    accepted: set[str] = set()
    recent: list[str] = []
    numbers = itertools.count()
    skus = list(STOCK)
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        for sku, sizes in STOCK.items():
            for n, qty in enumerate(sizes):
                batch = {"ref": f"{sku}-b{n}", "sku": sku, "qty": qty, "eta": None}
                (await client.post("/add_batch", json=batch)).raise_for_status()

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


async def _check(engine: AsyncEngine, accepted: set[str], report: SoakReport) -> None:
    """Every invariant, from the database; violations are appended to the report."""
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
    lost = sorted(o for o in unallocated if o in orders and left.get(orders[o][0], 0) >= orders[o][1])
    if lost:
        report.violations.append(f"orders unallocated although a batch still has the stock: {lost[:10]}")
    report.allocated_orders = len(allocated)
    report.unallocated_orders = len(unallocated)
    answered = sum(report.statuses.values())
    if answered != report.requests or any(not k.endswith((" 200", " 202", " 404")) for k in report.statuses):
        report.violations.append(f"requests not answered with 200/202/404: {report.statuses}")


async def _drained(engine: AsyncEngine, report: SoakReport) -> None:
    """Wait (with a deadline) until every outbox row is published; one row per allocation."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        async with engine.connect() as conn:
            counts: dict[str, int] = dict(
                (await conn.execute(text("SELECT status, count(*) FROM keel_outbox GROUP BY status"))).all()
            )
        pending = sum(n for status, n in counts.items() if status != "published")
        if not pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    report.outbox_published = counts.get("published", 0)
    if pending:
        report.violations.append(f"outbox not drained within {DRAIN_TIMEOUT:.0f} s: {counts}")
    if report.outbox_published != report.allocated_orders:
        report.violations.append(
            f"{report.outbox_published} outbox rows published for {report.allocated_orders} allocations"
        )


async def soak(url: str, *, connections: int, seconds: float, max_requests: int, logs: Path) -> SoakReport:
    """Run the API and the relay against ``url`` (tables already created), drive load, check every invariant.

    ``logs`` (an existing directory) receives the API's and the relay's output.
    """
    env = {
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
    port = free_port()
    api_log, relay_log = logs / "uvicorn.log", logs / "relay.log"
    command = [sys.executable, "-m", "uvicorn", "examples.allocation.api:create_app", "--factory"]
    api = _start([*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"], env, api_log)
    relay = _start([sys.executable, "-m", "keel", "outbox", "relay"], env, relay_log)
    report = SoakReport()
    engine = create_async_engine(url)
    try:
        await _wait_for(api_log, "Application startup complete", api)
        accepted = await _drive(f"http://127.0.0.1:{port}", connections, seconds, max_requests, report)
        await _check(engine, accepted, report)
        await _drained(engine, report)
        if relay.poll() is not None:
            report.violations.append(f"the relay exited early:\n{_tail(relay_log)}")
    finally:
        _stop(api)
        _stop(relay)
        await engine.dispose()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (20 connections, 10 s)")
    parser.add_argument("--connections", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--requests", type=int, default=1_000_000, help="stop after this many requests")
    args = parser.parse_args(argv)
    connections = args.connections or (20 if args.quick else 40)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    asyncio.run(prepare(url))
    logs = Path(tempfile.mkdtemp(prefix="keel-soak-"))
    report = asyncio.run(soak(url, connections=connections, seconds=seconds, max_requests=args.requests, logs=logs))
    print(f"soak: {connections} connections for up to {seconds:g} s against the allocation API (uvicorn + relay)")
    for line in report.lines():
        print(f"  {line}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
