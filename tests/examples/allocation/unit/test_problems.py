"""keel errors rendered as RFC 9457 problem details."""

from __future__ import annotations

import httpx
import pytest
from examples.allocation.domain.model import InvalidSku
from fastapi import FastAPI

from keel import (
    ConcurrencyError,
    ConflictError,
    DatabaseUnavailableError,
    KeelError,
    NotFoundError,
    ValidationError,
)
from keel.ext.fastapi import PROBLEM_JSON, install_problem_handlers

ERRORS: dict[str, Exception] = {
    "not-found": NotFoundError(entity="Order", id="o1"),
    "invalid": ValidationError("invalid Allocate: qty", errors=[{"loc": ["qty"], "msg": "bad", "type": "int"}]),
    "conflict": ConcurrencyError(entity="Product", id="LAMP", version=3),
    "duplicate": ConflictError("the change conflicts with existing data"),
    "invalid-sku": InvalidSku("Invalid sku NOPE", sku="NOPE"),
    "db-down": DatabaseUnavailableError("the database connection was lost"),
    "crash": RuntimeError("secret internals"),
}


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/raise/{name}")
    async def fail(name: str) -> None:
        raise ERRORS[name]

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("not-found", 404, "not_found"),
        ("invalid", 422, "validation_error"),
        ("conflict", 409, "concurrency_conflict"),
        ("duplicate", 409, "conflict"),
        ("invalid-sku", 400, "invalid_sku"),
        ("db-down", 503, "database_unavailable"),
    ],
)
async def test_each_keel_error_gets_its_status_and_a_problem_body(
    client: httpx.AsyncClient, name: str, status: int, code: str
) -> None:
    """Status by error class; the body has the RFC members plus code and message."""
    async with client:
        response = await client.get(f"/raise/{name}")
    error = ERRORS[name]
    assert isinstance(error, KeelError)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == f"urn:keel:problem:{code}"
    assert body["status"] == status
    assert body["code"] == code
    assert body["detail"] == body["message"] == error.message
    assert body["instance"] == f"/raise/{name}"
    assert body["title"]


async def test_a_validation_problem_lists_the_field_errors(client: httpx.AsyncClient) -> None:
    """422 bodies carry keel's `errors` list."""
    async with client:
        body = (await client.get("/raise/invalid")).json()
    assert body["errors"] == [{"loc": ["qty"], "msg": "bad", "type": "int"}]


async def test_an_unexpected_error_is_a_500_that_reveals_nothing(client: httpx.AsyncClient) -> None:
    """Crashes become a generic problem; the exception text stays in the log."""
    async with client:
        response = await client.get("/raise/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "secret" not in response.text
    assert response.json()["code"] == "internal_error"


async def test_an_unavailable_database_asks_the_client_to_retry(client: httpx.AsyncClient) -> None:
    """503 comes with Retry-After."""
    async with client:
        response = await client.get("/raise/db-down")
    assert response.headers["retry-after"] == "1"
