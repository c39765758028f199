"""The cachegrind driver's arithmetic: the count it reads and the cost per operation it derives."""

from __future__ import annotations

import pytest
from benchmarks.instructions import instructions_of, per_operation

CACHEGRIND_STDERR = """==4242== Cachegrind, a high-precision tracing profiler
==4242== Command: python -m benchmarks.instructions --child uow_overhead keel 600 50 url
==4242==
==4242== I refs:        2,893,104,512
"""


def test_the_instruction_total_is_read_from_cachegrinds_summary() -> None:
    """The ``I refs`` line of valgrind's stderr gives the process's instruction count, commas dropped."""
    assert instructions_of(CACHEGRIND_STDERR) == 2_893_104_512


def test_output_without_a_summary_is_reported_not_guessed() -> None:
    """A run that printed no count (valgrind failed) raises, naming the output."""
    with pytest.raises(RuntimeError, match="no instruction count"):
        instructions_of("==1== error")


def test_the_cost_per_operation_cancels_start_up_and_warm_up() -> None:
    """Two runs differing only in operations give (difference of totals) / (difference of operations)."""
    assert per_operation((100, 1_000_000 + 100 * 2_500), (600, 1_000_000 + 600 * 2_500)) == 2_500
    with pytest.raises(ValueError, match="more operations"):
        per_operation((600, 1), (100, 1))
