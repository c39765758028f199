"""docs/performance.md is the runner's page: every target in it, measured, with its bound and verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks._page import BEGIN, END, PLACEHOLDER, TABLE_HEADER, TEMPLATE, render
from benchmarks._registry import BENCHMARKS, Benchmark, Target
from benchmarks._runner import Run, read

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "performance.md"


def generated_part() -> str:
    text = PAGE.read_text()
    assert BEGIN in text, "docs/performance.md was not written by `python -m benchmarks`"
    return text[text.index(BEGIN) : text.index(END)]


def test_the_committed_page_has_every_target_with_measured_target_and_met_columns() -> None:
    """Each target of the registry has a row: benchmark, figure, a measured value, its bound and met/not met."""
    part = generated_part()
    assert TABLE_HEADER in part
    rows = [line for line in part.splitlines() if line.startswith("| `")]
    for benchmark in BENCHMARKS:
        for target in benchmark.targets:
            row = next((r for r in rows if r.startswith(f"| `{benchmark.name}` | {target.what} |")), None)
            assert row is not None, f"no row for {benchmark.name}: {target.what}"
            cells = [cell.strip() for cell in row.strip("|").split("|")]
            assert cells[3] == target.shown
            assert cells[4] in {"met", "**not met**", "—"}
            assert cells[2] == "not measured" or cells[4] != "—"


def test_the_committed_page_names_the_machine_and_how_to_reproduce() -> None:
    """The generated part records cores, memory, CPU, versions and the load, and the command to run."""
    part = generated_part()
    for fact in ("| cores |", "| memory |", "| CPU |", "| Python |", "| PostgreSQL |", "| load average at start"):
        assert fact in part
    assert "python -m benchmarks" in part
    assert "## Reports" in part


def test_the_template_keeps_the_placeholder_the_runner_fills() -> None:
    """The hand-written template has exactly one placeholder and no generated markers of its own."""
    text = TEMPLATE.read_text()
    assert text.count(PLACEHOLDER) == 1
    assert BEGIN not in text


def test_figures_are_read_from_a_report_and_judged_against_their_target() -> None:
    """A ratio line gives the measured value; the target's bound decides met; a missing line is not measured."""
    target = Target("keel / hand-written", r"^keel / hand-written = (?P<v>\d+\.\d+)x", ">=", 1.0, "x", "#8")
    benchmark = Benchmark("uow_overhead", targets=(target,), figures=(("spread", r"spread (?P<v>\d+)", "x"),))
    (met, absent) = read(benchmark, "table\nkeel / hand-written = 0.987x (median)\n")
    assert (met.value, met.met) == (0.987, False)
    assert (absent.value, absent.met) == (None, None)
    run = Run("uow_overhead", ["python", "-m", "benchmarks.uow_overhead"], 0, 1.0, "report", [met, absent])
    page = render([run], {"cores": "2"}, "python -m benchmarks", quick=False)
    assert "| `uow_overhead` | keel / hand-written | 0.987x | >= 1x | **not met** | #8 |" in page
    assert "| `uow_overhead` | spread | not measured | — | — |  |" in page


def test_a_template_without_the_placeholder_is_refused(tmp_path: Path) -> None:
    """Rendering into a template that lost its placeholder fails instead of dropping the figures."""
    template = tmp_path / "template.md"
    template.write_text("# Performance\n")
    with pytest.raises(ValueError, match="placeholder"):
        render([], {}, "python -m benchmarks", quick=True, template=template)
