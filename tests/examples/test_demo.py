"""The README's demo runs from a clean state and tells the story it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_migrates_allocates_cascades_and_retries_a_conflict(tmp_path: Path) -> None:
    """`python -m examples.demo` exits 0 and prints each step of the scenario."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    result = subprocess.run(
        [sys.executable, "-m", "examples.demo", "--database", str(tmp_path / "demo.db")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    expected = [
        "alembic upgrade heads",
        "> CreateBatch(ref='WAREHOUSE-1', sku='LAMP', qty=10, eta=None)",
        "event Allocated: order-1 LAMP x3 -> WAREHOUSE-1",
        "> ChangeBatchQuantity(ref='WAREHOUSE-1', qty=4)",
        "event Deallocated: order-2 LAMP x5",
        "event Allocated: order-2 LAMP x5 -> SHIPMENT-1",
        "allocations_view[order-2]: LAMP -> SHIPMENT-1",
        "notification to stock@example.com: Out of stock for LAMP",
        "retry: examples.allocation.handlers.change_batch_quantity ChangeBatchQuantity failed ([concurrency_conflict]",
        "both restocks applied (WAREHOUSE-1=20, SHIPMENT-1=30)",
        "conflicts caught and retried: 1",
        "0 failed event handlers",
    ]
    positions = [out.find(line) for line in expected]
    missing = [line for line, at in zip(expected, positions, strict=True) if at < 0]
    assert not missing, f"missing from the demo's output: {missing}\n{out}"
    assert positions == sorted(positions), out
    assert (tmp_path / "demo.db").exists()
