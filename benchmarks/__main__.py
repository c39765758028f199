"""``python -m benchmarks``: run every benchmark with its baselines and write docs/performance.md.

    python -m benchmarks                          # the standard run (about 20 minutes on 2 cores)
    python -m benchmarks --quick --output x.md    # the smoke run CI does (small sizes)
    python -m benchmarks --only cache --only soak # some of them
    python -m benchmarks --instructions           # + cachegrind instruction counts (needs valgrind)

Each benchmark runs in its own process (see ``benchmarks/_runner.py``); the
targets it answers are in ``benchmarks/_registry.py``; the page's
explanations are in ``benchmarks/performance_template.md``. The exit status
is 1 when a benchmark failed to run (a target not met is a figure, not a failure).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks._page import render
from benchmarks._registry import BENCHMARKS, INSTRUCTIONS, Benchmark
from benchmarks._runner import DEFAULT_URL, ROOT, Run, machine, run

OUTPUT = ROOT / "docs" / "performance.md"


def selected(only: list[str] | None, instructions: bool) -> list[Benchmark]:
    """The benchmarks of this run, in the registry's order; an unknown name is an error."""
    every = [*BENCHMARKS, *(INSTRUCTIONS if instructions else ())]
    if not only:
        return every
    known = {b.name for b in (*BENCHMARKS, *INSTRUCTIONS)}
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {sorted(known)}")
    return [b for b in (*BENCHMARKS, *INSTRUCTIONS) if b.name in only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, figures not meaningful")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with cachegrind")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the page to write (default docs/performance.md)")
    args = parser.parse_args(argv)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    benchmarks = selected(args.only, args.instructions)
    facts = machine(url)  # before the first benchmark: the load average says what else was running
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    runs: list[Run] = []
    for benchmark in benchmarks:
        print(f"{benchmark.name} ...", end=" ", flush=True)
        done = run(benchmark, quick=args.quick, url=url)
        runs.append(done)
        figures = ", ".join(f"{r.what}: {r.value}" for r in done.results)
        print(f"{done.seconds:.0f} s, exit {done.returncode}; {figures}", flush=True)
    args.output.write_text(render(runs, facts, command, quick=args.quick))
    print(f"wrote {args.output}")
    return 1 if any(r.returncode != 0 for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
