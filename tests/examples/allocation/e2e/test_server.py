"""The app behind a real uvicorn server: lifespan, TCP, and an unreachable database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from dependency_injector import providers
from examples.allocation.api import create_app
from examples.allocation.container import AllocationContainer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from keel.config import KeelSettings
from keel.ext.fastapi import PROBLEM_JSON


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port (lifespan on); yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            await task  # surface a start-up failure
            raise AssertionError("the server did not start within 10 s")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_a_real_server_allocates_and_disposes_the_engine_on_shutdown(
    database_url: str, engine: AsyncEngine
) -> None:
    """The app's own container starts with the server and stops with it."""
    container = AllocationContainer()
    container.settings.override(providers.Object(KeelSettings(database={"url": database_url})))
    async with serving(create_app(container)) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post("/add_batch", json={"ref": "b1", "sku": "DESK", "qty": 5, "eta": None})
        assert response.status_code == 201
        assert (await client.post("/allocate", json={"orderid": "o1", "sku": "DESK", "qty": 2})).status_code == 202
        assert (await client.get("/allocations/o1")).json() == [{"sku": "DESK", "batchref": "b1"}]
        assert (await client.get("/health/ready")).status_code == 200
        app_engine = container.engine()
        assert app_engine is not engine
    assert isinstance(app_engine.pool, QueuePool)
    assert app_engine.pool.checkedin() == 0


async def test_readiness_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """/health/ready answers 503 problem details; /health/live still says ok."""
    container = AllocationContainer()
    unreachable = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}"
    container.settings.override(providers.Object(KeelSettings(database={"url": unreachable})))
    async with serving(create_app(container)) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        assert (await client.get("/health/live")).status_code == 200
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["checks"]["database"]["status"] == "failed"
    assert response.json()["status"] == 503
