"""Instructions per operation, keel against its baseline, counted with cachegrind.

Wall-clock ratios on a shared machine swing by tens of percent from round to
round; instruction counts do not depend on the load and repeat to about 1%.
Each side of a benchmark runs alone in its own process under
``valgrind --tool=cachegrind --cache-sim=no``, once with ``--small`` and once
with ``--large`` timed operations after the same warm-up; the difference of
the two totals divided by the difference of the operation counts is the cost
of one operation, start-up, imports and warm-up cancelling out. Only the
client process is counted (not the database server).

    python -m benchmarks.instructions uow_overhead           # 100 and 600 operations per side
    python -m benchmarks.instructions bus_overhead --small 50 --large 300
    python -m benchmarks.instructions uow_overhead --quick   # a short smoke run

Needs valgrind (``apt-get install -y valgrind``); CI does not run it. Each
process gets its own database (``<database>_cg<n>``) so sides can run in
parallel (``--jobs``). ``KEEL_BENCH_DATABASE_URL`` points it elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_test"
BENCHMARKS = ("uow_overhead", "bus_overhead", "audit_overhead", "outbox_relay", "pagination", "bulk_insert")
_I_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


@dataclass(frozen=True)
class Count:
    """Instructions per operation of one side."""

    side: str
    per_op: float


def instructions_of(valgrind_stderr: str) -> int:
    """The total ``I refs`` cachegrind reports on stderr."""
    match = _I_REFS.search(valgrind_stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{valgrind_stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def per_operation(small: tuple[int, int], large: tuple[int, int]) -> float:
    """Instructions per operation from two (operations, instructions) runs of the same side."""
    (ops_a, total_a), (ops_b, total_b) = small, large
    if ops_b <= ops_a:
        raise ValueError("the large run needs more operations than the small one")
    return (total_b - total_a) / (ops_b - ops_a)


def _count(benchmark: str, side: str, ops: int, warmup: int, url: str) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in every run
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        benchmark,
        side,
        str(ops),
        str(warmup),
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{benchmark} {side} failed:\n{result.stderr[-4000:]}")
    return instructions_of(result.stderr)


def count(
    benchmark: str, small: int, large: int, warmup: int, url: str, jobs: int, only: list[str] | None = None
) -> list[Count]:
    """Instructions per operation of every side of ``benchmark`` (its ``SIDES``, baseline first), or of ``only``."""
    sides: tuple[str, ...] = importlib.import_module(f"benchmarks.{benchmark}").SIDES
    sides = tuple(side for side in sides if not only or side in only)
    runs = [(side, ops) for side in sides for ops in (small, large)]
    base = make_url(url)
    urls = [base.set(database=f"{base.database}_cg{n}").render_as_string(hide_password=False) for n in range(jobs)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(_count, benchmark, side, ops, warmup, urls[n % jobs]) for n, (side, ops) in enumerate(runs)
        ]
        totals = {run: future.result() for run, future in zip(runs, futures, strict=True)}
    return [Count(side, per_operation((small, totals[side, small]), (large, totals[side, large]))) for side in sides]


def report(benchmark: str, counts: list[Count], small: int, large: int) -> None:
    print(f"instructions: {benchmark}, client process, ({large} - {small} operations) / {large - small}")
    print(f"{'side':<40}{'instructions/op':>16}{'/ first':>12}")
    baseline = counts[0].per_op
    for c in counts:
        print(f"{c.side:<40}{c.per_op / 1e6:>15.3f}M{c.per_op / baseline:>11.3f}x")


def _child(benchmark: str, side: str, ops: int, warmup: int, url: str) -> None:
    module = importlib.import_module(f"benchmarks.{benchmark}")
    asyncio.run(module.run_side(url, side, warmup, ops))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        benchmark, side, child_ops, child_warmup, child_url = args[1:]
        _child(benchmark, side, int(child_ops), int(child_warmup), child_url)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("benchmark", choices=BENCHMARKS)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--small", type=int, default=None, help="operations of the first run per side")
    parser.add_argument("--large", type=int, default=None, help="operations of the second run per side")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2, help="valgrind processes at a time")
    parser.add_argument("--side", action="append", help="count only this side (repeatable)")
    parsed = parser.parse_args(args)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    small = parsed.small or (10 if parsed.quick else 100)
    large = parsed.large or (30 if parsed.quick else 600)
    warmup = parsed.warmup or (10 if parsed.quick else 50)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    counts = count(parsed.benchmark, small, large, warmup, url, max(1, parsed.jobs), parsed.side)
    report(parsed.benchmark, counts, small, large)
    return 0


if __name__ == "__main__":
    sys.exit(main())
