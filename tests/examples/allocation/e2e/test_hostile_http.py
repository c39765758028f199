"""The allocation API under odd requests: every error is problem+json, nothing leaks, the service keeps working."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from examples.allocation.api import create_app
from examples.allocation.container import AllocationContainer

from keel.config import DatabaseSettings, KeelSettings
from keel.container import running
from keel.infrastructure.database import create_engine

PROBLEM_JSON = "application/problem+json"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "code", "message"}


def assert_problem(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_MEMBERS
    assert body["status"] == response.status_code
    assert "Traceback" not in response.text
    assert "sqlalchemy" not in response.text.lower()
    assert "asyncpg" not in response.text.lower()
    assert "sqlite" not in response.text.lower()
    return body


BATCH = {"ref": "b1", "sku": "LAMP", "qty": 10, "eta": None}

ODD_BODIES: dict[str, tuple[bytes, dict[str, str]]] = {
    "json array": (b"[1, 2, 3]", {"content-type": "application/json"}),
    "json null": (b"null", {"content-type": "application/json"}),
    "json string": (b'"hello"', {"content-type": "application/json"}),
    "empty body": (b"", {"content-type": "application/json"}),
    "not utf-8": (b'{"ref": "\xff\xfe", "sku": "x", "qty": 1}', {"content-type": "application/json"}),
    "truncated": (b'{"ref": "b1", "sku": ', {"content-type": "application/json"}),
    "deeply nested": (b'{"ref": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {"content-type": "application/json"}),
    "text/plain": (json.dumps(BATCH).encode(), {"content-type": "text/plain"}),
    "form encoded": (b"ref=b1&sku=LAMP&qty=10", {"content-type": "application/x-www-form-urlencoded"}),
    "no content type": (json.dumps(BATCH).encode(), {}),
    "xml": (b"<batch ref='b1'/>", {"content-type": "application/xml"}),
    "NaN quantity": (b'{"ref": "b1", "sku": "LAMP", "qty": NaN}', {"content-type": "application/json"}),
    "huge quantity literal": (
        b'{"ref": "b1", "sku": "LAMP", "qty": 1' + b"0" * 5000 + b"}",
        {"content-type": "application/json"},
    ),
    "float quantity": (b'{"ref": "b1", "sku": "LAMP", "qty": 1e400}', {"content-type": "application/json"}),
    "lone surrogate": (b'{"ref": "\\ud800", "sku": "LAMP", "qty": 1}', {"content-type": "application/json"}),
    "huge body": (
        json.dumps({**BATCH, "ref": "r" * 5_000_000}).encode(),
        {"content-type": "application/json"},
    ),
}


@pytest.mark.parametrize("case", list(ODD_BODIES))
async def test_an_odd_body_is_a_client_error_problem_and_nothing_is_stored(
    client: httpx.AsyncClient, case: str
) -> None:
    """Arrays, nulls, bad UTF-8, deep nesting, wrong content types, NaN, huge numbers and bodies: a 4xx problem."""
    content, headers = ODD_BODIES[case]
    response = await client.post("/add_batch", content=content, headers=headers)
    body = assert_problem(response, (400, 415, 422))
    assert len(response.content) < 20_000, "the problem must not echo a huge body back"
    assert "r" * 1000 not in json.dumps(body)
    ok = await client.post("/add_batch", json=BATCH)
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    "sku",
    ["LAMPE-\u00e9t\u00e9", "\u706f", "\U0001f4a1", "a\u0301", "\u202eRTL", "x" * 255],
)
async def test_unicode_skus_round_trip_and_unknown_ones_are_named_in_a_400(client: httpx.AsyncClient, sku: str) -> None:
    """Accents, CJK, emoji, combining marks, bidi overrides, 255 characters: stored and allocated as sent."""
    created = await client.post("/add_batch", json={"ref": f"batch-{len(sku)}-{ord(sku[0])}", "sku": sku, "qty": 5})
    assert created.status_code == 201, created.text
    allocated = await client.post("/allocate", json={"orderid": "o1", "sku": sku, "qty": 1})
    assert allocated.status_code == 202, allocated.text
    view = await client.get("/allocations/o1")
    assert view.json() == [{"sku": sku, "batchref": f"batch-{len(sku)}-{ord(sku[0])}"}]
    other = "?" + sku[1:]
    unknown = await client.post("/allocate", json={"orderid": "o2", "sku": other, "qty": 1})
    body = assert_problem(unknown, 400)
    assert body["message"] == f"Invalid sku {other}"


@pytest.mark.parametrize(
    "path",
    ["/allocations/%00", "/allocations/%ud800", "/allocations/..%2F..%2Fetc", "/allocations/" + "%F0%9F%92%A1" * 300],
)
async def test_an_odd_order_id_in_the_path_is_a_404_or_422_problem(client: httpx.AsyncClient, path: str) -> None:
    """NUL, broken escapes, traversal, 300 emoji: a problem, never a 500."""
    response = await client.get(path)
    assert_problem(response, (404, 422))


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_problems(client: httpx.AsyncClient, method: str) -> None:
    """Methods the API does not serve answer 405 problem+json with Allow."""
    response = await client.request(method, "/add_batch", json=BATCH)
    assert_problem(response, 405)
    assert response.headers["allow"]


@pytest.fixture
async def unreachable() -> AsyncIterator[httpx.AsyncClient]:
    """The app on a database nobody listens for (a closed port): every write fails to connect."""
    container = AllocationContainer()
    settings = KeelSettings(bus={"max_attempts": 2, "backoff_initial": 0.001, "jitter": 0})
    container.settings.override(providers.Object(settings))
    engine = create_engine(
        DatabaseSettings(url="postgresql+asyncpg://app:s3cret-pw@127.0.0.1:1/shop", connect_timeout=2)
    )
    container.engine.override(providers.Object(engine))
    app = create_app(container, manage_resources=False)
    async with running(container):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://allocation.test") as client:
            yield client
    await engine.dispose()


async def test_an_unreachable_database_is_a_503_problem_with_retry_after_and_no_secret(
    unreachable: httpx.AsyncClient,
) -> None:
    """Writes and readiness on a refused connection: 503 problem+json, Retry-After, no URL or password."""
    for response in (
        await unreachable.post("/add_batch", json=BATCH),
        await unreachable.get("/allocations/o1"),
        await unreachable.get("/health/ready"),
    ):
        assert_problem(response, 503)
        assert response.headers["retry-after"]
        assert "s3cret-pw" not in response.text
        assert "127.0.0.1" not in response.text
