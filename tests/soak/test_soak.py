"""The load soak, short form: concurrent HTTP clients on the allocation API, every invariant held at the end.

``KEEL_SOAK=1`` runs the long form (50 connections for 300 s); the driver is
``benchmarks/soak.py``, which ``python -m benchmarks`` also runs for
docs/performance.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import examples.allocation.orm  # noqa: F401  (puts the example's tables on Base.metadata for the engine fixture)
import pytest
from benchmarks.soak import soak
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LONG = os.environ.get("KEEL_SOAK") == "1"
CONNECTIONS = 50 if LONG else 20
SECONDS = 300.0 if LONG else 15.0
MAX_REQUESTS = 1_000_000 if LONG else 3_000


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_concurrent_clients_lose_double_and_oversell_nothing(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Stock never negative, each 202'd order allocated at most once and viewed iff allocated, outbox drained."""
    report = await soak(
        database_url, connections=CONNECTIONS, seconds=SECONDS, max_requests=MAX_REQUESTS, logs=tmp_path
    )
    print("\n".join(["soak:", *report.lines()]))
    assert report.violations == []
    assert report.requests > 0
    assert report.allocated_orders > 0
