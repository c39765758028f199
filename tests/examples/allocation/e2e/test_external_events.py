"""Cosmic Python's message end-to-end tests (chapter 11) against the three real processes.

The API (uvicorn), keel's generic outbox relay and the example's consumer
run as processes on a fresh migrated PostgreSQL database and the Pub/Sub
emulator; a Pub/Sub client stands where the book's redis client stood: it
publishes to ``change_batch_quantity`` and subscribes to ``line_allocated``.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from examples.allocation.consumer import CONSUMER

from tests.examples.allocation.e2e.processes import (
    Service,
    migrated_database,
    new_project,
    publish_json,
    pubsub_clients,
    pull_json,
    service_environment,
    start_api,
    start_consumer,
    start_relay,
    subscribe_to,
    subscription_exists,
)
from tests.support.services import pubsub_emulator_host

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.pubsub]

ORDERS = 100
CLIENTS = 20
SKUS = 5  # 20 orders contend for each product: conflicts and retries, in under a minute on a shared machine


@dataclass
class Deployment:
    """The three processes and a Pub/Sub client subscribed to ``line_allocated``."""

    api: Service
    publisher: Any
    subscriber: Any
    project: str
    line_allocated: str


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Starts uvicorn, the relay and the consumer (once for both tests); stops them with SIGTERM, checks their exits."""
    tmp_path = tmp_path_factory.mktemp("processes")
    emulator = pubsub_emulator_host()
    project = new_project()
    with migrated_database() as url, pubsub_clients(emulator) as (publisher, subscriber):
        line_allocated = subscribe_to(publisher, subscriber, project, "line_allocated")
        env = service_environment(url, emulator, project)
        services: list[Service] = []
        try:
            services.append(start_consumer(env, tmp_path, subscription_exists(subscriber, project, CONSUMER)))
            services.append(start_relay(env, tmp_path))
            services.append(start_api(env, tmp_path))
            yield Deployment(services[-1], publisher, subscriber, project, line_allocated)
        finally:
            codes = {service.name: service.stop() for service in reversed(services)}
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        expected = {service.name: -signal.SIGTERM if service.name == "api" else 0 for service in services}
        assert codes == expected, {s.name: s.output()[-2000:] for s in services}
        assert "Application shutdown complete" in services[-1].output()


def random_suffix() -> str:
    return uuid.uuid4().hex[:6]


def line_allocated_messages(deployment: Deployment, until: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Pull ``line_allocated`` bodies until ``until`` distinct orders are seen (or the deadline)."""
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len({body["orderid"] for body in bodies}) < until and time.monotonic() < deadline:
        bodies += [body for body, _ in pull_json(deployment.subscriber, deployment.line_allocated)]
    return bodies


def test_change_batch_quantity_leading_to_reallocation(deployment: Deployment) -> None:
    """A change_batch_quantity message shrinks a batch; the order moves, and line_allocated says where."""
    orderid, sku = f"order-{random_suffix()}", f"sku-{random_suffix()}"
    earlier_batch, later_batch = f"old-{random_suffix()}", f"newer-{random_suffix()}"
    with httpx.Client(base_url=deployment.api.url or "", timeout=30) as api:
        for ref, eta in ((earlier_batch, "2011-01-01"), (later_batch, "2011-01-02")):
            assert api.post("/add_batch", json={"ref": ref, "sku": sku, "qty": 10, "eta": eta}).status_code == 201
        assert api.post("/allocate", json={"orderid": orderid, "sku": sku, "qty": 10}).status_code == 202
        assert api.get(f"/allocations/{orderid}").json() == [{"sku": sku, "batchref": earlier_batch}]

        first = line_allocated_messages(deployment, until=1)
        assert first == [{"orderid": orderid, "sku": sku, "qty": 10, "batchref": earlier_batch}]

        publish_json(
            deployment.publisher, deployment.project, "change_batch_quantity", {"batchref": earlier_batch, "qty": 5}
        )

        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not messages and time.monotonic() < deadline:
            messages = [body for body, _ in pull_json(deployment.subscriber, deployment.line_allocated)]
        assert messages == [{"orderid": orderid, "sku": sku, "qty": 10, "batchref": later_batch}]
        assert api.get(f"/allocations/{orderid}").json() == [{"sku": sku, "batchref": later_batch}]


def test_no_allocation_event_is_lost_under_concurrent_orders(deployment: Deployment) -> None:
    """100 orders from 20 concurrent HTTP clients: one line_allocated message (at least) per order, none lost."""
    skus = [f"sku-{n}-{random_suffix()}" for n in range(SKUS)]
    orders = {f"order-{n}-{random_suffix()}": skus[n % SKUS] for n in range(ORDERS)}

    async def place_orders() -> list[int]:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=deployment.api.url or "", limits=limits, timeout=60) as api:
            for sku in skus:
                batch = {"ref": f"batch-{random_suffix()}", "sku": sku, "qty": ORDERS}
                assert (await api.post("/add_batch", json=batch)).status_code == 201
            gate = asyncio.Semaphore(CLIENTS)

            async def order(orderid: str, sku: str) -> int:
                async with gate:
                    response = await api.post("/allocate", json={"orderid": orderid, "sku": sku, "qty": 1})
                    return response.status_code

            return await asyncio.gather(*(order(orderid, sku) for orderid, sku in orders.items()))

    assert set(asyncio.run(place_orders())) == {202}
    bodies = line_allocated_messages(deployment, until=ORDERS, timeout=45)
    assert {body["orderid"] for body in bodies} == set(orders)
    assert all(body["sku"] == orders[body["orderid"]] and body["qty"] == 1 for body in bodies)
