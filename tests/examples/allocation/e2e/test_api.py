"""Cosmic Python's allocation API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from examples.allocation.orm import batches, order_lines, products
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.ext.fastapi import PROBLEM_JSON


def random_suffix() -> str:
    return uuid.uuid4().hex[:6]


def random_sku(name: str = "") -> str:
    return f"sku-{name}-{random_suffix()}"


def random_batchref(name: str = "") -> str:
    return f"batch-{name}-{random_suffix()}"


def random_orderid(name: str = "") -> str:
    return f"order-{name}-{random_suffix()}"


async def post_to_add_batch(client: httpx.AsyncClient, ref: str, sku: str, qty: int, eta: str | None) -> None:
    response = await client.post("/add_batch", json={"ref": ref, "sku": sku, "qty": qty, "eta": eta})
    assert response.status_code == 201, response.text


async def post_to_allocate(client: httpx.AsyncClient, orderid: str, sku: str, qty: int) -> httpx.Response:
    return await client.post("/allocate", json={"orderid": orderid, "sku": sku, "qty": qty})


async def rows(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_happy_path_returns_202_and_batch_is_allocated(client: httpx.AsyncClient) -> None:
    """Cosmic Python's end-to-end test: the earliest batch with stock wins."""
    orderid = random_orderid()
    sku, othersku = random_sku(), random_sku("other")
    earlybatch, laterbatch, otherbatch = random_batchref("1"), random_batchref("2"), random_batchref("3")
    await post_to_add_batch(client, laterbatch, sku, 100, "2011-01-02")
    await post_to_add_batch(client, earlybatch, sku, 100, "2011-01-01")
    await post_to_add_batch(client, otherbatch, othersku, 100, None)

    response = await post_to_allocate(client, orderid, sku, 3)
    assert response.status_code == 202

    response = await client.get(f"/allocations/{orderid}")
    assert response.status_code == 200
    assert response.json() == [{"sku": sku, "batchref": earlybatch}]


async def test_unhappy_path_returns_400_and_error_message(client: httpx.AsyncClient) -> None:
    """An unknown sku is 400 with Cosmic Python's message, as problem details; nothing is allocated."""
    unknown_sku, orderid = random_sku(), random_orderid()
    response = await post_to_allocate(client, orderid, unknown_sku, 20)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["message"] == f"Invalid sku {unknown_sku}"
    assert (body["status"], body["code"], body["detail"]) == (400, "invalid_sku", f"Invalid sku {unknown_sku}")

    response = await client.get(f"/allocations/{orderid}")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "not_found"


async def test_a_malformed_command_gets_422_with_field_errors_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Every bad field is reported at once (problem details with `errors`); the database is untouched."""
    response = await client.post(
        "/add_batch", json={"ref": "b1", "sku": "", "qty": "lots", "eta": "someday", "colour": "red"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["code"] == "validation_error"
    assert {tuple(error["loc"]) for error in body["errors"]} == {("sku",), ("qty",), ("eta",), ("colour",)}
    assert body["message"] == "invalid CreateBatch: sku, qty, eta, colour"

    missing = await client.post("/allocate", json={"orderid": "o1"})
    assert missing.status_code == 422
    assert {tuple(error["loc"]) for error in missing.json()["errors"]} == {("sku",), ("qty",)}

    not_json = await client.post("/allocate", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    assert not_json.json()["errors"][0]["type"] == "json_invalid"

    for table in (products, batches, order_lines):
        assert await rows(engine, table) == 0


async def test_a_smaller_batch_moves_allocations_to_the_next_batch(client: httpx.AsyncClient) -> None:
    """The ChangeBatchQuantity -> Deallocated -> Allocate cascade, seen through the API."""
    sku, order1, order2 = random_sku(), random_orderid("1"), random_orderid("2")
    await post_to_add_batch(client, "in-stock", sku, 10, None)
    await post_to_add_batch(client, "shipment", sku, 10, "2030-01-01")
    assert (await post_to_allocate(client, order1, sku, 6)).status_code == 202
    assert (await post_to_allocate(client, order2, sku, 4)).status_code == 202

    response = await client.post("/change_batch_quantity", json={"ref": "in-stock", "qty": 6})
    assert response.status_code == 202

    assert (await client.get(f"/allocations/{order1}")).json() == [{"sku": sku, "batchref": "in-stock"}]
    assert (await client.get(f"/allocations/{order2}")).json() == [{"sku": sku, "batchref": "shipment"}]


async def test_changing_an_unknown_batch_is_404(client: httpx.AsyncClient) -> None:
    """NotFoundError maps to 404 problem details naming the batch."""
    response = await client.post("/change_batch_quantity", json={"ref": "ghost", "qty": 1})
    assert response.status_code == 404
    assert response.json()["message"] == "Batch 'ghost' not found"


async def test_the_probes_report_live_and_ready(client: httpx.AsyncClient) -> None:
    """Liveness checks the process's event loop; readiness keel's checks, a query on the database among them."""
    live = (await client.get("/health/live")).json()
    assert live["status"] == "live"
    assert list(live["checks"]) == ["event_loop"]
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["status"] == "ok"
