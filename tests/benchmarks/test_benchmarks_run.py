"""Every benchmark still runs (its --quick smoke mode); the figures are not judged here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: ``instructions`` is the cachegrind driver (it needs valgrind; CI does not run it); ``soak`` has tests/soak/.
BENCHMARKS = sorted(
    p.stem
    for p in (ROOT / "benchmarks").glob("*.py")
    if not p.stem.startswith("_") and p.stem not in {"instructions", "soak"}
)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_in_quick_mode(name: str, postgres_url: str) -> None:
    """`python -m benchmarks.<name> --quick` exits 0 and prints a ratio or timing table."""
    env = {**os.environ, "KEEL_BENCH_DATABASE_URL": postgres_url}
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+\.\d+x", result.stdout), result.stdout  # a ratio such as "0.97x"


@pytest.mark.slow
@pytest.mark.postgres
def test_the_runner_writes_the_page_in_quick_mode(postgres_url: str, tmp_path: Path) -> None:
    """`python -m benchmarks --quick --only ...` runs the benchmark and writes a page with its target row."""
    env = {**os.environ, "KEEL_BENCH_DATABASE_URL": postgres_url}
    page = tmp_path / "performance.md"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--only", "uow_overhead", "--output", str(page)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    text = page.read_text()
    assert "Smoke run (`--quick`)" in text
    assert re.search(r"\| `uow_overhead` \| keel / hand-written, load-modify-commit \| \d+\.\d+x \| >= 1x \|", text), (
        text
    )
