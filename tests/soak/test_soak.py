"""The load soak, short form: concurrent HTTP clients on the allocation API, every invariant held at the end.

With the Pub/Sub emulator (``PUBSUB_EMULATOR_HOST``; ``./scripts/test`` starts
one) the relay publishes there and the example's consumer runs, fed
change_batch_quantity messages (some twice) during the load: each distinct
message must be applied exactly once and every allocation's line_allocated
message must arrive. Without the emulator the relay publishes on the
in-memory bus (under ``KEEL_REQUIRE_SERVICES=1`` a missing emulator fails).

Short form: 20 connections for 15 s or 3,000 requests. ``KEEL_SOAK=1`` runs
the long form, 50 connections for 300 s:

    KEEL_SOAK=1 ./scripts/test tests/soak -s

The driver is ``benchmarks/soak.py``, which ``python -m benchmarks`` also
runs for docs/performance.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import examples.allocation.orm  # noqa: F401  (puts the example's tables on Base.metadata for the engine fixture)
import pytest
from benchmarks.soak import soak
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.services import pubsub_emulator_host, services_required

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LONG = os.environ.get("KEEL_SOAK") == "1"
CONNECTIONS = 50 if LONG else 20
SECONDS = 300.0 if LONG else 15.0
MAX_REQUESTS = 1_000_000 if LONG else 3_000


def emulator() -> str | None:
    """The emulator when one is set (or required: then its absence fails); else None, the in-memory bus."""
    if os.environ.get("PUBSUB_EMULATOR_HOST") or services_required():
        return pubsub_emulator_host()
    return None


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_concurrent_clients_lose_double_and_oversell_nothing(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """No stock oversold, no order allocated twice or lost, outbox drained; on Pub/Sub, consumed exactly once."""
    host = emulator()
    report = await soak(
        database_url,
        connections=CONNECTIONS,
        seconds=SECONDS,
        max_requests=MAX_REQUESTS,
        logs=tmp_path,
        emulator=host,
    )
    print("\n".join(["soak:", *report.lines()]))
    assert report.violations == []
    assert report.requests > 0
    assert report.allocated_orders > 0
    if host is not None:
        assert report.bus == "pubsub"
        assert report.messages_published > 0
        assert report.messages_publications > report.messages_published  # some were published twice
        assert report.messages_applied == report.messages_published
        assert report.line_allocated_received >= report.allocated_orders
