"""One HTTP request makes one trace: HTTP -> bus -> SQL -> commit -> outbox -> relay -> Pub/Sub -> consumer -> bus.

A small app of the test's own (not the example's wiring): ``POST /allocate``
handles ``Allocate`` on the container's bus, whose ``Allocated`` event the
outbox routes to a topic; the relay runs in-process; an idempotent consumer
on that topic handles ``Acknowledge`` on the same bus. Runs on PostgreSQL,
with the in-memory bus and with the Pub/Sub emulator.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from dependency_injector import providers
from fastapi import Depends, FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from keel import Command, HandlerRegistry, MessageBus
from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.domain.ports import IncomingMessage
from keel.ext.fastapi import CORRELATION_HEADER, install_keel, message_bus
from keel.infrastructure.database.audit_table import audit as audit_table
from keel.orm import Base, keel_metadata
from keel.outbox import IdempotentConsumer, OutboxRouting, Route
from keel.security import Principal, current_principal
from tests.conftest import reset_schema
from tests.contract.event_buses import PROJECT, bus_settings
from tests.models import Allocated, AppUnitOfWork, Product
from tests.support.services import pubsub_emulator_host
from tests.telemetry.conftest import Recorded

pytestmark = pytest.mark.postgres


class Allocate(Command):
    sku: str
    qty: int


class Acknowledge(Command):
    sku: str


registry = HandlerRegistry()


@registry.register
async def allocate(cmd: Allocate, uow: AppUnitOfWork) -> None:
    async with uow:
        product = await uow.products.get(cmd.sku)
        product.allocate(cmd.qty)
        await uow.commit()


@registry.register
async def acknowledge(cmd: Acknowledge, uow: AppUnitOfWork) -> str | None:
    async with uow:
        await uow.products.get(cmd.sku)
        await uow.commit()
    principal = current_principal()
    return principal.id if principal else None


class TraceContainer(KeelContainer[AppUnitOfWork]):
    unit_of_work_class = providers.Object(AppUnitOfWork)
    handlers = providers.Object(registry)


async def by_header(request: Request) -> Principal | None:
    user = request.headers.get("X-User")
    return Principal(id=user) if user else None


def build_app(container: TraceContainer) -> FastAPI:
    app = FastAPI()
    install_keel(app, container, authenticator=by_header, health=False)

    @app.post("/allocate", status_code=202)
    async def post_allocate(cmd: Allocate, bus: Annotated[MessageBus, Depends(message_bus)]) -> None:
        await bus.handle(cmd)

    return app


@dataclass
class Flow:
    """What went through the app: the consumer's principals, the audit rows, the spans."""

    acknowledged_as: list[str | None]
    audit: list[dict[str, Any]]
    topic: str
    subscription: str


async def run_flow(postgres_url: str, backend: str) -> Flow:
    topic, subscription = f"trace-{uuid.uuid4().hex[:8]}", f"trace-sub-{uuid.uuid4().hex[:8]}"
    event_bus: dict[str, Any] = {"backend": backend}
    if backend == "pubsub":
        pubsub_emulator_host()
        event_bus = {**bus_settings().model_dump(), "backend": "pubsub", "project_id": PROJECT}
    container = TraceContainer()
    settings = KeelSettings(
        database={"url": postgres_url}, telemetry={"enabled": True}, event_bus=event_bus, outbox={"listen": False}
    )
    container.settings.override(providers.Object(settings))
    container.outbox_routes.override(providers.Object(OutboxRouting({Allocated: Route(topic)})))
    async with running(container):
        engine = container.engine()
        await reset_schema(engine, Base.metadata)
        await reset_schema(engine, keel_metadata)
        async with container.unit_of_work() as uow:
            uow.products.add(Product(sku="LAMP", stock=10))
            await uow.commit()
        acknowledged_as: list[str | None] = []
        done = asyncio.Event()

        async def on_allocated(message: IncomingMessage, uow: AppUnitOfWork) -> None:
            acknowledged_as.append(await container.bus().handle(Acknowledge(sku="LAMP")))
            done.set()

        consumer = IdempotentConsumer("trace-consumer", on_allocated, container.unit_of_work)
        running_subscription = await container.event_bus().subscribe(topic, subscription, consumer)
        transport = httpx.ASGITransport(app=build_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="http://trace.test") as http:
            answer = await http.post(
                "/allocate",
                json={"sku": "LAMP", "qty": 1},
                headers={"X-User": "alice", CORRELATION_HEADER: "req-trace"},
            )
        assert answer.status_code == 202, answer.text
        assert (await container.outbox_relay().process_batch()).published == 1
        await asyncio.wait_for(done.wait(), timeout=30)
        await running_subscription.stop()
        async with container.session_factory()() as session:
            rows = await session.execute(select(audit_table).order_by(audit_table.c.occurred_at))
            audit = [dict(row._mapping) for row in rows]
    return Flow(acknowledged_as, audit, topic, subscription)


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """``span``'s parent, its parent, ... as far as the recorded spans go."""
    by_id = {s.context.span_id: s for s in spans}
    chain: list[ReadableSpan] = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        chain.append(by_id[parent.span_id])
        parent = chain[-1].parent
    return chain


def only(spans: list[ReadableSpan], test: Callable[[ReadableSpan], bool]) -> ReadableSpan:
    found = [s for s in spans if test(s)]
    assert len(found) == 1, [s.name for s in found]
    return found[0]


@pytest.fixture(params=["memory", pytest.param("pubsub", marks=pytest.mark.pubsub)])
async def flow(request: pytest.FixtureRequest, postgres_url: str, recorded: Recorded) -> Flow:
    return await run_flow(postgres_url, str(request.param))


async def test_one_request_is_one_trace_from_http_to_the_consumers_bus(flow: Flow, recorded: Recorded) -> None:
    """HTTP server -> Allocate -> SQL and commit -> publish -> consume -> Acknowledge: one trace, each a child."""
    spans = recorded.spans()
    server = only(spans, lambda s: s.kind == SpanKind.SERVER)
    handled = only(spans, lambda s: s.name.startswith("Allocate"))
    commit = next(s for s in spans if s.name == "keel.uow.commit" and s.parent == handled.context)
    update = only(spans, lambda s: s.name.startswith("UPDATE") and server in ancestors(s, spans))
    publish = only(spans, lambda s: s.name == f"{flow.topic} publish")
    consume = only(spans, lambda s: s.kind == SpanKind.CONSUMER)
    acknowledged = only(spans, lambda s: s.name.startswith("Acknowledge"))
    batch = only(spans, lambda s: s.name == "keel.outbox.relay_batch")

    trace = server.context.trace_id
    assert {s.context.trace_id for s in (handled, commit, update, publish, consume, acknowledged)} == {trace}
    assert server in ancestors(handled, spans)
    assert commit in ancestors(update, spans)
    assert handled in ancestors(publish, spans)  # the outbox row carried the request's context
    assert publish.kind == SpanKind.PRODUCER
    assert consume.parent is not None
    assert consume.parent.span_id == publish.context.span_id
    assert consume in ancestors(acknowledged, spans)
    assert ancestors(acknowledged, spans)[-1] is server
    assert batch.context.trace_id != trace  # the relay's own work is its own trace
    assert batch.attributes is not None
    assert batch.attributes["keel.outbox.batch_size"] == 1


async def test_the_consumer_acts_as_the_requests_principal_in_its_correlation(flow: Flow) -> None:
    """The command a consumer handles is audited with the HTTP caller's principal and correlation id."""
    assert flow.acknowledged_as == ["alice"]
    rows = {row["message_type"]: row for row in flow.audit}
    assert rows["Acknowledge"]["principal_id"] == rows["Allocate"]["principal_id"] == "alice"
    assert rows["Acknowledge"]["correlation_id"] == rows["Allocate"]["correlation_id"] == "req-trace"
    assert rows["Acknowledge"]["outcome"] == "succeeded"
