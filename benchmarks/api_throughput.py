"""The allocation API under load: keel's example against the same API hand-written on FastAPI + SQLAlchemy.

Both sides serve Cosmic Python's allocation API from a uvicorn process of
their own, on the same tables and the same PostgreSQL database, and take the
soak's load (``benchmarks/soak.py``: ``CONNECTIONS`` httpx clients, three
allocations per read-back, one scarce sku): ``keel`` is
``examples.allocation.api`` (message bus, audit, processed-commands record,
outbox row, read model updated by an event handler), ``hand-written`` is
``benchmarks/_handwritten_allocation.py`` (one transaction per request,
availability summed in SQL). The tables are re-created before every run;
the sides alternate over ``ROUNDS`` rounds and the medians are compared, so
the ratio holds on a busy machine where the absolute figures do not. No
relay runs: this measures the API process (the soak adds the relay).

    python -m benchmarks.api_throughput            # 3 rounds, 20 connections, 15 s per run
    python -m benchmarks.api_throughput --quick    # 1 round, 10 s

``KEEL_BENCH_DATABASE_URL`` names the PostgreSQL database (created if absent).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.soak import DEFAULT_URL, SoakReport, _drive, _start, _stop, _wait_for, free_port, prepare

SIDES = {
    "keel": "examples.allocation.api:create_app",
    "hand-written": "benchmarks._handwritten_allocation:create_app",
}


async def run_side(side: str, url: str, *, connections: int, seconds: float, logs: Path) -> SoakReport:
    """One run of ``side`` on freshly created tables: throughput and latencies under the soak's load."""
    await prepare(url)
    env = {
        **os.environ,
        "KEEL_DATABASE__URL": url,
        "KEEL_DATABASE__POOL_SIZE": "10",
        "KEEL_DATABASE__MAX_CONNECTIONS": "20",
        "KEEL_OUTBOX__ROUTES": '{"Allocated": "line_allocated"}',
        "KEEL_EVENT_BUS__BACKEND": "memory",
    }
    port = free_port()
    log = logs / f"{side}.log"
    command = [sys.executable, "-m", "uvicorn", SIDES[side], "--factory", "--no-access-log"]
    server = _start([*command, "--host", "127.0.0.1", "--port", str(port)], env, log)
    report = SoakReport()
    try:
        await _wait_for(log, "Application startup complete", server)
        await _drive(f"http://127.0.0.1:{port}", connections, seconds, 1_000_000, report)
    finally:
        _stop(server)
    report.requests = len(report.latencies_ms)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (1 round, 10 s per run)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (10.0 if args.quick else 15.0)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    logs = Path(tempfile.mkdtemp(prefix="keel-api-throughput-"))
    runs: dict[str, list[SoakReport]] = {side: [] for side in SIDES}
    for n in range(rounds):
        order = list(SIDES) if n % 2 == 0 else list(reversed(SIDES))
        for side in order:
            report = asyncio.run(run_side(side, url, connections=args.connections, seconds=seconds, logs=logs))
            runs[side].append(report)
    print(f"api_throughput: {args.connections} connections, {rounds} round(s) of {seconds:g} s per side")
    medians: dict[str, tuple[float, float, float]] = {}
    for side, reports in runs.items():
        throughput = statistics.median(r.throughput for r in reports)
        p50 = statistics.median(r.percentile(50) for r in reports)
        p99 = statistics.median(r.percentile(99) for r in reports)
        medians[side] = (throughput, p50, p99)
        statuses: dict[str, int] = {}
        for r in reports:
            for key, count in r.statuses.items():
                statuses[key] = statuses.get(key, 0) + count
        figures = f"{throughput:7.0f} req/s  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms"
        print(f"  {side:<13} {figures}  {dict(sorted(statuses.items()))}")
    keel, hand = medians["keel"], medians["hand-written"]
    print(f"  throughput: keel / hand-written = {keel[0] / hand[0]:.3f}x")
    print(f"  p50 latency: keel / hand-written = {keel[1] / hand[1]:.3f}x")
    print(f"  p99 latency: keel / hand-written = {keel[2] / hand[2]:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
