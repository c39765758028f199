"""What automatic audit costs: the allocation example's Allocate command with auditing on versus off.

Both sides are the example's container bus (``container.bus()``: the
correlation and permission middleware, the exactly-once record, the event
handlers), on one engine; the only difference is ``KEEL_SECURITY__AUDIT``.
With audit on, every command builds an audit entry (principal, correlation
id, redacted payload) and inserts one ``keel_audit`` row in the handler's
own transaction. Rounds are interleaved, alternating which side goes first,
and the tables are cleared between rounds (untimed). Target: >= 0.9x.

    python -m benchmarks.audit_overhead            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.audit_overhead --quick    # a short smoke run

``KEEL_BENCH_DATABASE_URL`` points it elsewhere (``sqlite+aiosqlite:///bench.db`` works too).
Instruction counts, which do not depend on the machine's load:
``python -m benchmarks.instructions audit_overhead``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.notifications import RecordingNotifications
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.bus_overhead import DEFAULT_URL, Operation, clear, prepare, through_bus, timed
from benchmarks.uow_overhead import ensure_database, keel_engine
from keel.config import KeelSettings
from keel.container import running
from keel.security import Principal, as_principal

#: Who the commands run as: the audit rows carry a principal, as they would behind an API.
CLERK = Principal(id="bench-clerk", permissions=frozenset({"allocate"}))
SIDES = ("audit off", "audit on")


def container_for(engine: AsyncEngine, *, audit: bool) -> AllocationContainer:
    container = AllocationContainer()
    container.settings.override(providers.Object(KeelSettings(security={"audit": audit})))
    container.engine.override(providers.Object(engine))
    container.notifications.override(providers.Object(RecordingNotifications()))
    return container


async def run(url: str, rounds: int, ops: int) -> dict[str, list[tuple[float, float]]]:
    if url.startswith("postgresql"):
        await ensure_database(url)
    engine = keel_engine(url)
    try:
        await prepare(engine)
        off, on = container_for(engine, audit=False), container_for(engine, audit=True)
        async with running(off), running(on):
            sides: dict[str, Operation] = {"audit off": through_bus(off.bus()), "audit on": through_bus(on.bus())}
            counter = 0
            with as_principal(CLERK):
                for operation in sides.values():  # warm up pools, caches, the statement cache
                    await timed(operation, counter, max(ops // 5, 20))
                    counter += ops
                await clear(engine)
                results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
                for round_ in range(rounds):
                    for name in SIDES if round_ % 2 == 0 else reversed(SIDES):
                        results[name].append(await timed(sides[name], counter, ops))
                        counter += ops
                        await clear(engine)
        return results
    finally:
        await engine.dispose()


async def run_side(url: str, side: str, warmup: int, ops: int) -> None:
    """Run ``warmup`` then ``ops`` commands of one side alone (for ``benchmarks.instructions``)."""
    if url.startswith("postgresql"):
        await ensure_database(url)
    engine = keel_engine(url)
    try:
        await prepare(engine)
        container = container_for(engine, audit=side == "audit on")
        async with running(container):
            operation = through_bus(container.bus())
            with as_principal(CLERK):
                await timed(operation, 0, warmup)
                await timed(operation, warmup, ops)
    finally:
        await engine.dispose()


def report(url: str, results: dict[str, list[tuple[float, float]]], rounds: int, ops: int) -> float:
    """Print the table; return the median per-round throughput ratio (on / off)."""
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"audit_overhead: Allocate through the container's bus; {rounds} interleaved rounds x {ops} ops on {shown}")
    print(f"  {'side':<12}{'median ops/s':>14}{'min':>8}{'max':>8}{'CPU ms/op':>11}")
    for name, values in results.items():
        rates = [rate for rate, _ in values]
        cpu = statistics.median(c for _, c in values)
        print(f"  {name:<12}{statistics.median(rates):>14.0f}{min(rates):>8.0f}{max(rates):>8.0f}{cpu:>11.3f}")
    per_round = sorted(on[0] / off[0] for on, off in zip(results["audit on"], results["audit off"], strict=True))
    ratio = statistics.median(per_round)
    cpu_ratio = statistics.median(
        off[1] / on[1] for on, off in zip(results["audit on"], results["audit off"], strict=True)
    )
    spread = f"middle half {per_round[len(per_round) // 4]:.3f}..{per_round[(3 * len(per_round)) // 4]:.3f}"
    print(
        f"  audit on / off = {ratio:.3f}x throughput (median of per-round ratios, {spread}; target >= 0.9x), "
        f"{cpu_ratio:.3f}x by CPU time per op"
    )
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per round and side")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 20)
    ops = args.ops or (40 if args.quick else 100)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    results = asyncio.run(run(url, rounds, ops))
    report(url, results, rounds, ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
