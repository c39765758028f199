"""Every error the allocation API answers is problem+json, and hostile input gets one clear answer."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.model import OrderLine, Product

from keel import ConcurrencyError
from keel.config import KeelSettings
from keel.ext.fastapi import PROBLEM_JSON

from .test_api import post_to_add_batch, post_to_allocate, random_batchref, random_orderid, random_sku

ATTEMPTS = 3


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["message"] == body["detail"]
    assert body["message"]
    assert {"type", "title", "instance"} <= set(body)
    return body


async def test_an_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    """No route: problem details, not Starlette's {"detail": "Not Found"}."""
    body = assert_problem(await client.get("/no/such/route"), 404, "not_found")
    assert body["instance"] == "/no/such/route"


async def test_a_wrong_method_is_a_405_problem_that_keeps_allow(client: httpx.AsyncClient) -> None:
    """GET on a POST route: problem details, and the Allow header still says what is allowed."""
    response = await client.get("/allocate")
    body = assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    assert "POST" in body["message"]


async def test_a_body_that_cannot_be_read_is_a_400_problem(client: httpx.AsyncClient) -> None:
    """A JSON body that is not UTF-8 cannot be parsed at all: 400 problem details."""
    response = await client.post(
        "/allocate", content=b'{"orderid": "\xff"}', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "bad_request")


async def test_a_409_after_the_retries_ran_out_carries_retry_after(
    client: httpx.AsyncClient, container: AllocationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every attempt lost to a concurrent change, the client is told to come back later."""
    container.settings.override(
        providers.Object(KeelSettings(bus={"max_attempts": ATTEMPTS, "backoff_initial": 0.001, "jitter": 0}))
    )
    sku = random_sku()
    await post_to_add_batch(client, random_batchref(), sku, 10, None)
    attempts = 0

    def always_loses(self: Product, line: OrderLine) -> str | None:
        nonlocal attempts
        attempts += 1
        raise ConcurrencyError(entity="Product", id=self.sku, version=self.version)

    monkeypatch.setattr(Product, "allocate", always_loses)
    response = await post_to_allocate(client, random_orderid(), sku, 1)
    assert_problem(response, 409, "concurrency_conflict")
    assert response.headers["retry-after"] == "1"
    assert attempts == ATTEMPTS


async def test_a_duplicate_batch_gets_one_answer_whatever_the_sku(client: httpx.AsyncClient) -> None:
    """The same reference again, for the same or another sku: the same 409, no Retry-After."""
    ref, sku = random_batchref(), random_sku()
    await post_to_add_batch(client, ref, sku, 10, None)
    same_sku = await client.post("/add_batch", json={"ref": ref, "sku": sku, "qty": 5})
    other_sku = await client.post("/add_batch", json={"ref": ref, "sku": random_sku("other"), "qty": 5})
    assert assert_problem(same_sku, 409, "conflict") == assert_problem(other_sku, 409, "conflict")
    assert same_sku.json()["message"] == f"batch {ref!r} already exists"
    assert "retry-after" not in same_sku.headers


async def test_concurrent_duplicate_batches_get_one_201_and_the_same_409(client: httpx.AsyncClient) -> None:
    """Two requests racing for one reference on new skus: one wins, the loser gets the duplicate answer."""
    ref = random_batchref()
    responses = await asyncio.gather(
        *(client.post("/add_batch", json={"ref": ref, "sku": random_sku(str(n)), "qty": 5}) for n in range(2))
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    loser = next(r for r in responses if r.status_code == 409)
    assert assert_problem(loser, 409, "conflict")["message"] == f"batch {ref!r} already exists"


async def test_concurrent_first_batches_of_one_new_sku_both_succeed(client: httpx.AsyncClient) -> None:
    """Two new batches racing to create the same product: both are stored, neither is a conflict."""
    sku = random_sku()
    refs = [random_batchref(str(n)) for n in range(2)]
    responses = await asyncio.gather(
        *(client.post("/add_batch", json={"ref": ref, "sku": sku, "qty": 5}) for ref in refs)
    )
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    used = set()
    for orderid in (random_orderid("1"), random_orderid("2")):  # each line fills one batch of 5
        assert (await post_to_allocate(client, orderid, sku, 5)).status_code == 202
        [allocation] = (await client.get(f"/allocations/{orderid}")).json()
        used.add(allocation["batchref"])
    assert used == set(refs)


async def test_a_long_order_id_is_refused_without_a_query(client: httpx.AsyncClient) -> None:
    """An order id longer than the column is a 422 naming the limit, and the value is not echoed in it."""
    response = await client.get(f"/allocations/{'x' * 256}")
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["path", "orderid"]
    assert "255" in body["message"]
    assert "x" * 256 not in body["message"]


async def test_an_unknown_order_is_named_once_in_its_404(client: httpx.AsyncClient) -> None:
    """The 404 for an order with no allocations carries its id in `instance` only, not four times."""
    orderid = random_orderid()
    response = await client.get(f"/allocations/{orderid}")
    assert_problem(response, 404, "not_found")
    assert response.text.count(orderid) == 1
    assert response.json()["instance"] == f"/allocations/{orderid}"


@pytest.mark.parametrize("qty", [True, False, "3", 3.0])
async def test_a_quantity_must_be_a_json_integer(client: httpx.AsyncClient, qty: object) -> None:
    """Booleans, strings and floats are not quantities (pydantic would coerce true to 1)."""
    sku = random_sku()
    await post_to_add_batch(client, random_batchref(), sku, 10, None)
    response = await client.post("/allocate", json={"orderid": random_orderid(), "sku": sku, "qty": qty})
    body = assert_problem(response, 422, "validation_error")
    assert [error["loc"] for error in body["errors"]] == [["qty"]]
    batch = await client.post("/add_batch", json={"ref": random_batchref(), "sku": sku, "qty": qty})
    assert [error["loc"] for error in assert_problem(batch, 422, "validation_error")["errors"]] == [["qty"]]


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/add_batch", {"ref": "   ", "sku": "LAMP", "qty": 1}, "ref"),
        ("/add_batch", {"ref": "b1", "sku": "\t\n", "qty": 1}, "sku"),
        ("/allocate", {"orderid": " ", "sku": "LAMP", "qty": 1}, "orderid"),
        ("/allocate", {"orderid": "o1", "sku": "  ", "qty": 1}, "sku"),
        ("/change_batch_quantity", {"ref": " ", "qty": 1}, "ref"),
    ],
)
async def test_whitespace_only_references_are_refused(
    client: httpx.AsyncClient, path: str, payload: dict[str, object], field: str
) -> None:
    """A blank ref, sku or order id is a field error that says so, like an empty one."""
    body = assert_problem(await client.post(path, json=payload), 422, "validation_error")
    assert body["errors"] == [
        {"loc": [field], "msg": "Value error, must not be blank (whitespace only)", "type": "value_error"}
    ]
