"""Cursor fingerprints agree across processes, so a cursor issued by one worker is accepted by another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_FINGERPRINT_SCRIPT = """
from keel.infrastructure.repository._sorting import sort_keys
from keel.infrastructure.repository.cursor import fingerprint
from tests.contract.models import Item
names = {f"name-{i}" for i in range(40)}
print(fingerprint(Item, sort_keys(Item, "name"), [Item.name.in_(names), Item.category.in_({"x", "y", "z"})], "live"))
"""


def test_the_fingerprint_is_the_same_in_every_process() -> None:
    """Two workers with different hash seeds agree, so a cursor from one is accepted by the other."""
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _FINGERPRINT_SCRIPT],
            env=env,
            cwd=Path(__file__).parents[2],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1
