"""Several API processes on one database: uvicorn --workers 3, concurrent clients, nothing lost or doubled.

The deployment shape of docs/scaling.md for the stateless API role alone;
``test_deployment_shape.py`` runs it together with two outbox relays, two
consumers and two projection workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import examples.allocation.orm  # noqa: F401  (puts the example's tables on Base.metadata for the engine fixture)
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.postgres_cluster import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[4]
WORKERS = 3
CLIENTS = 12
SKUS = {"LAMP": (8, 7), "DESK": (6, 9)}  # two batches each: 15 units per sku
ORDERS_PER_SKU = 25  # 10 more than the stock, so some orders find none left
START_TIMEOUT = 60.0


@pytest.fixture
def api_workers(database_url: str, engine: AsyncEngine, tmp_path: Path) -> Iterator[str]:
    """``uvicorn ... --workers 3`` on a free loopback port against the test database; its base URL."""
    port = free_port()
    log = tmp_path / "uvicorn.log"
    env = {
        **os.environ,
        "KEEL_DATABASE__URL": database_url,
        "KEEL_DATABASE__POOL_SIZE": "3",
        "KEEL_DATABASE__MAX_CONNECTIONS": "6",
        # Contention on two aggregates from three processes: retry a conflict often, wait little.
        "KEEL_BUS__MAX_ATTEMPTS": "200",
        "KEEL_BUS__BACKOFF_INITIAL": "0.002",
        "KEEL_BUS__BACKOFF_MAX": "0.05",
    }
    command = [sys.executable, "-m", "uvicorn", "examples.allocation.api:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS), "--log-level", "info"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while log.read_text().count("Application startup complete") < WORKERS:
            assert process.poll() is None, f"uvicorn exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"uvicorn workers did not start:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert log.read_text().count("Started server process") >= WORKERS


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_three_api_workers_allocate_each_unit_of_stock_once(api_workers: str, engine: AsyncEngine) -> None:
    """Concurrent allocations through 3 processes: every unit allocated once, no order twice, none lost."""
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)  # new connection: any worker
    async with httpx.AsyncClient(base_url=api_workers, limits=limits, timeout=60) as client:
        for sku, quantities in SKUS.items():
            for number, qty in enumerate(quantities):
                batch = {"ref": f"{sku}-{number}", "sku": sku, "qty": qty, "eta": None}
                assert (await client.post("/add_batch", json=batch)).status_code == 201
        orders = [(f"{sku}-order-{n}", sku) for n in range(ORDERS_PER_SKU) for sku in SKUS]
        gate = asyncio.Semaphore(CLIENTS)

        async def allocate(orderid: str, sku: str) -> int:
            async with gate:
                response = await client.post("/allocate", json={"orderid": orderid, "sku": sku, "qty": 1})
                return response.status_code

        statuses = await asyncio.wait_for(asyncio.gather(*(allocate(o, s) for o, s in orders)), timeout=120)
        assert set(statuses) == {202}
        found = [(await client.get(f"/allocations/{orderid}")).status_code for orderid, _ in orders]

    stock = {sku: sum(quantities) for sku, quantities in SKUS.items()}
    async with engine.connect() as conn:
        per_batch: dict[str, int] = dict(
            (
                await conn.execute(
                    text(
                        "SELECT b.reference, count(a.id) FROM batches b LEFT JOIN allocations a ON a.batch_id = b.id "
                        "GROUP BY b.reference"
                    )
                )
            ).all()
        )
        lines_per_order = (
            await conn.execute(
                text(
                    "SELECT max(n) FROM (SELECT count(*) AS n FROM order_lines l "
                    "JOIN allocations a ON a.orderline_id = l.id GROUP BY l.orderid) counts"
                )
            )
        ).scalar()
        view_rows = (await conn.execute(text("SELECT count(*) FROM allocations_view"))).scalar()
    for sku, quantities in SKUS.items():
        for number, qty in enumerate(quantities):
            assert per_batch[f"{sku}-{number}"] == qty, "each batch is allocated exactly to its size, never over"
    assert lines_per_order == 1, "no order is allocated twice"
    assert view_rows == sum(stock.values()), "the read model holds one row per allocation"
    assert found.count(200) == sum(stock.values())
    assert found.count(404) == len(orders) - sum(stock.values())
