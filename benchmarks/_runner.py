"""Run one benchmark and read its figures: the common interface ``python -m benchmarks`` drives.

Each benchmark runs as ``python -m benchmarks.<name>`` in a process of its
own: several of them map their own models on keel's shared ``Base`` and tune
the garbage collector, and one process each keeps a benchmark's pools and
heap out of the next one's figures. ``run(benchmark, quick=...)`` returns
its :class:`Result` rows (targets met or not, other figures) and the report
it printed, whose absolute figures the page shows as they are.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._registry import Benchmark, Target

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench"
#: Lines of a report that are not figures (pip's index warnings, the development cursor secret's warning).
_NOISE = re.compile(r"^(WARNING: Location|a cursor was signed with the public development secret)")


@dataclass(frozen=True)
class Result:
    """One figure of a run: its target (None for a figure without one) and whether it was met."""

    benchmark: str
    what: str
    value: float | None
    unit: str
    target: Target | None = None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.target.met(self.value)


@dataclass
class Run:
    """A benchmark's run: its command, exit status, seconds, printed report and figures."""

    benchmark: str
    command: list[str]
    returncode: int
    seconds: float
    output: str
    results: list[Result] = field(default_factory=list)


def figure(pattern: str, output: str) -> float | None:
    """The number the pattern's group ``v`` captures in ``output`` (first match), or None when absent."""
    match = re.search(pattern, output, re.MULTILINE)
    return float(match.group("v")) if match else None


def read(benchmark: Benchmark, output: str) -> list[Result]:
    """The benchmark's targets and figures as read from its printed report."""
    results = [Result(benchmark.name, t.what, figure(t.pattern, output), t.unit, t) for t in benchmark.targets]
    results += [Result(benchmark.name, what, figure(p, output), unit) for what, p, unit in benchmark.figures]
    return results


def run(benchmark: Benchmark, *, quick: bool, url: str, timeout: float = 1800) -> Run:
    """Run one benchmark (its ``--quick`` form, or the registry's standard arguments) and read its figures."""
    module = benchmark.module or benchmark.name
    command = [sys.executable, "-m", f"benchmarks.{module}", *(benchmark.quick_args if quick else benchmark.args)]
    env = {**os.environ, "KEEL_BENCH_DATABASE_URL": url}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        returncode, output = -1, f"timed out after {timeout:.0f} s\n{partial}"
    output = "\n".join(line for line in str(output).splitlines() if not _NOISE.match(line)).strip()
    return Run(benchmark.name, command, returncode, time.perf_counter() - started, output, read(benchmark, output))


def _first(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _postgres_version(url: str) -> str:
    import asyncio

    import asyncpg
    from sqlalchemy import make_url

    async def ask() -> str:
        target = make_url(url).set(drivername="postgresql", database="postgres")
        conn = await asyncpg.connect(target.render_as_string(hide_password=False), timeout=10)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    try:
        return asyncio.run(ask())
    except (OSError, asyncpg.PostgresError) as exc:
        return f"unreachable ({type(exc).__name__})"


def machine(url: str) -> dict[str, str]:
    """What the run ran on: cores, memory, CPU model, versions, and the load average at start."""
    import asyncpg
    import sqlalchemy

    one, five, fifteen = os.getloadavg()
    memory_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return {
        "CPU": _first("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "memory": f"{int(memory_kb) / 1024 / 1024:.1f} GiB" if memory_kb.isdigit() else "unknown",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "PostgreSQL": _postgres_version(url),
        "SQLAlchemy / asyncpg": f"{sqlalchemy.__version__} / {asyncpg.__version__}",
        "load average at start (1/5/15 min)": f"{one:.2f} / {five:.2f} / {fifteen:.2f}",
        "commit": commit.stdout.strip() or "unknown",
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
