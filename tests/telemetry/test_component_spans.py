"""keel's event store, outbox relay, event bus and inbox record spans and metrics, in the trace of the work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import DomainEvent
from keel.config import OutboxSettings
from keel.cross_cutting.cache import InMemoryCache
from keel.cross_cutting.error import PublishError
from keel.cross_cutting.telemetry import observe_replica_stats, record_cache_stats
from keel.domain.ports import IncomingMessage, OutgoingMessage
from keel.event_bus import InMemoryEventBus
from keel.event_store import NO_STREAM, SqlAlchemyEventStore
from keel.infrastructure.database.replicas import ReplicaStats
from keel.outbox import OutboxRelay, OutboxWriter
from keel.telemetry import instrument_app, span
from tests.integration.outbox.conftest import ROUTES, allocate, seed
from tests.models import AppUnitOfWork
from tests.telemetry.conftest import Recorded


class TelemetryLampLit(DomainEvent):
    """An event of this file's own: event type names are unique per process."""

    sku: str


async def test_event_store_appends_and_reads_are_spans_of_the_current_trace(
    session_factory: async_sessionmaker[AsyncSession], recorded: Recorded
) -> None:
    """append and read_stream are keel.event_store.* spans (stream id, count), children of the caller's span."""
    store = SqlAlchemyEventStore(session_factory)
    with span("request") as request:
        assert request is not None
        await store.append(
            "lamp-1", [TelemetryLampLit(sku="LAMP"), TelemetryLampLit(sku="LAMP")], expected_version=NO_STREAM
        )
        assert len(await store.read_stream("lamp-1")) == 2
        await store.read_all()
    appended = recorded.one("keel.event_store.append")
    reads = recorded.named("keel.event_store.read")
    assert dict(appended.attributes or {}) == {"keel.stream_id": "lamp-1", "keel.events": 2}
    assert [dict(read.attributes or {}).get("keel.events") for read in reads] == [2, 2]
    for child in (appended, *reads):
        assert child.parent is not None
        assert child.parent.span_id == request.get_span_context().span_id


class _Refusing(InMemoryEventBus):
    async def publish(self, message: OutgoingMessage) -> str:
        raise PublishError("broker down", topic=message.topic)


@pytest.fixture
def writing_uow(session_factory: async_sessionmaker[AsyncSession]) -> Callable[[], AppUnitOfWork]:
    writer = OutboxWriter(ROUTES)
    return lambda: AppUnitOfWork(session_factory, participants=[writer])


async def test_the_relay_publishes_each_row_in_the_trace_that_wrote_it_and_counts_it(
    session_factory: async_sessionmaker[AsyncSession], writing_uow: Callable[[], AppUnitOfWork], recorded: Recorded
) -> None:
    """The publish span is a child of the writer's span, the message carries its traceparent; relayed is counted."""
    await seed(writing_uow, "LAMP")
    with span("request") as request:
        assert request is not None
        await allocate(writing_uow, "LAMP")
    bus = InMemoryEventBus()
    received: list[IncomingMessage] = []
    done = asyncio.Event()

    async def consume(message: IncomingMessage) -> None:
        received.append(message)
        done.set()

    await bus.subscribe("allocations", "audit", consume)
    relay = OutboxRelay(bus, session_factory, settings=OutboxSettings(listen=False))
    assert (await relay.process_batch()).published == 1
    await asyncio.wait_for(done.wait(), timeout=10)
    await bus.close()
    await relay.record_backlog()

    trace = request.get_span_context().trace_id
    publish = recorded.one("allocations publish")
    consume_span = recorded.one("allocations process")
    assert publish.kind is SpanKind.PRODUCER
    assert publish.context.trace_id == trace
    assert consume_span.kind is SpanKind.CONSUMER
    assert consume_span.parent is not None
    assert consume_span.parent.span_id == publish.context.span_id
    assert received[0].attributes["traceparent"].split("-")[2] == format(publish.context.span_id, "016x")
    assert recorded.one("keel.outbox.relay_batch").context.trace_id != trace
    assert recorded.total("keel.outbox.relayed", topic="allocations") == 1
    assert [point.value for point in recorded.points("keel.outbox.backlog")] == [0]


async def test_a_failed_publish_is_counted_per_topic(
    session_factory: async_sessionmaker[AsyncSession], writing_uow: Callable[[], AppUnitOfWork], recorded: Recorded
) -> None:
    """A message the bus refuses adds to keel.outbox.relay_failures and leaves an error on its publish attempt."""
    await seed(writing_uow, "LAMP")
    await allocate(writing_uow, "LAMP")
    relay = OutboxRelay(_Refusing(), session_factory, settings=OutboxSettings(listen=False))
    assert (await relay.process_batch()).failed == 1
    assert recorded.total("keel.outbox.relay_failures", topic="allocations") == 1
    assert recorded.total("keel.outbox.relayed") == 0


async def test_cache_hits_misses_and_errors_become_metrics(recorded: Recorded) -> None:
    """record_cache_stats hooks the cache's counters to keel.cache.* by namespace, once however often called."""
    cache = InMemoryCache()
    record_cache_stats(cache.stats, namespace="shop")
    record_cache_stats(cache.stats, namespace="shop")
    for name in ("hits", "misses", "misses", "errors", "fills"):
        cache.stats.count(name)
    assert recorded.total("keel.cache.hits", namespace="shop") == 1
    assert recorded.total("keel.cache.misses", namespace="shop") == 2
    assert recorded.total("keel.cache.errors", namespace="shop") == 1


def test_replica_router_counters_are_observed_at_export(recorded: Recorded) -> None:
    """observe_replica_stats exports fallbacks, waits, reads per target and lag as keel.db.replica.*."""
    stats = ReplicaStats(fallbacks=2, read_your_writes_waits=3, replica_reads=5, primary_reads=1)
    stats.lag_seconds["replica-1"] = 0.25
    observe_replica_stats(stats)
    assert recorded.total("keel.db.replica.fallbacks") == 2
    assert recorded.total("keel.db.replica.waits") == 3
    assert recorded.total("keel.db.replica.reads", target="replica") == 5
    assert [point.value for point in recorded.points("keel.db.replica.lag")] == [0.25]


async def test_an_instrumented_app_makes_one_server_span_per_request_even_instrumented_twice(
    recorded: Recorded,
) -> None:
    """instrument_app adds an HTTP SERVER span around each request (the route's spans its children), once."""
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        with span("inside"):
            return {"ok": "yes"}

    assert instrument_app(instrument_app(app)) is app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test") as http:
        assert (await http.get("/ping")).status_code == 200
    server = [s for s in recorded.spans() if s.kind is SpanKind.SERVER]
    assert len(server) == 1
    inside = recorded.one("inside")
    assert inside.parent is not None
    assert inside.parent.span_id == server[0].context.span_id


def test_without_telemetry_settings_install_keel_adds_no_http_spans() -> None:
    """A container whose settings leave telemetry off: install_keel does not instrument the app."""
    from keel.ext.fastapi import install_keel

    app = FastAPI()
    settings = SimpleNamespace(telemetry=SimpleNamespace(enabled=False))
    install_keel(app, SimpleNamespace(settings=lambda: settings), health=False)
    assert not getattr(app.state, "keel_otel_instrumented", False)


def test_the_containers_cache_reports_metrics_only_under_telemetry() -> None:
    """KEEL_TELEMETRY__ENABLED: the container's cache has the metrics listener; otherwise none."""
    from keel.config import KeelSettings
    from keel.container import observed_cache
    from keel.cross_cutting.telemetry import CacheMetricsListener

    on = observed_cache(KeelSettings(telemetry={"enabled": True}, cache={"backend": "memory"}))
    off = observed_cache(KeelSettings(cache={"backend": "memory"}))
    assert isinstance(on, InMemoryCache)
    assert isinstance(off, InMemoryCache)
    assert [type(listener) for listener in on.stats.listeners] == [CacheMetricsListener]
    assert off.stats.listeners == []
