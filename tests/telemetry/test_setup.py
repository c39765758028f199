"""configure_telemetry: providers passed in or built from settings, then restored; no-ops without OpenTelemetry."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from keel import ConfigurationError
from keel.config import KeelSettings, TelemetrySettings
from keel.container import KeelContainer, running
from keel.cross_cutting.telemetry import _state, inject_trace_context
from keel.infrastructure.database import create_engine
from keel.telemetry import (
    CommitTelemetry,
    TelemetryMiddleware,
    configure_telemetry,
    instrument_engine,
    metrics,
    span,
    start_consumer_span,
)
from keel.testing import InMemoryUnitOfWork
from tests.telemetry.conftest import Recorded


def exporters_of(provider: TracerProvider) -> list[str]:
    processors = provider._active_span_processor._span_processors
    return [
        type(getattr(p, "span_exporter", None) or p._batch_processor._exporter).__name__  # type: ignore[attr-defined]
        for p in processors
    ]


def test_providers_built_from_settings_export_where_the_settings_say(global_providers: list[object]) -> None:
    """An OTLP endpoint: OTLP/HTTP exporters; console: the console exporter; neither: no exporter; globals set."""
    otlp = configure_telemetry(
        KeelSettings(telemetry=TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318/", service_name="alloc"))
    )
    try:
        assert otlp.owned
        assert isinstance(otlp.tracer_provider, TracerProvider)
        assert exporters_of(otlp.tracer_provider) == ["OTLPSpanExporter"]
        assert otlp.tracer_provider.resource.attributes["service.name"] == "alloc"
        assert global_providers == [otlp.tracer_provider, otlp.meter_provider]
    finally:
        otlp.shutdown()
    console = configure_telemetry(TelemetrySettings(console=True))
    assert isinstance(console.tracer_provider, TracerProvider)
    assert exporters_of(console.tracer_provider) == ["ConsoleSpanExporter"]
    console.shutdown()
    quiet = configure_telemetry(TelemetrySettings())
    assert isinstance(quiet.tracer_provider, TracerProvider)
    assert exporters_of(quiet.tracer_provider) == []
    quiet.shutdown()


def test_shutdown_restores_the_providers_keel_recorded_on_before(recorded: Recorded) -> None:
    """A nested configure_telemetry takes over; its shutdown hands back to the outer one, which sees later spans."""
    exporter = InMemorySpanExporter()
    inner_provider = TracerProvider()
    inner_provider.add_span_processor(SimpleSpanProcessor(exporter))
    inner = configure_telemetry(TelemetrySettings(), inner_provider, MeterProvider())
    assert not inner.owned
    with span("inner"):
        pass
    inner.shutdown()
    inner.shutdown()  # harmless twice
    with span("outer"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["inner"]
    assert [s.name for s in recorded.spans()] == ["outer"]


async def test_an_engine_instrumented_before_configuration_reports_to_the_providers_configured_after(
    tmp_path: Path,
) -> None:
    """instrument_engine follows keel's current providers (and twice is harmless): start-up order does not matter."""
    engine = create_engine(KeelSettings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}))
    assert instrument_engine(instrument_engine(engine)) is engine
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = configure_telemetry(TelemetrySettings(), provider, MeterProvider())
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        telemetry.shutdown()
        await engine.dispose()
    assert [s.name.split()[0] for s in exporter.get_finished_spans()] == ["SELECT"]


async def test_the_container_instruments_its_engine_bus_and_commits_when_telemetry_is_enabled(
    tmp_path: Path, recorded: Recorded
) -> None:
    """KEEL_TELEMETRY__ENABLED: telemetry middleware outermost, commit participant first, SQL spans; off: none."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"

    class On(KeelContainer):
        pass

    on = On()
    on.settings.override(KeelSettings(database={"url": url}, telemetry={"enabled": True}))
    async with running(on):
        bus = on.bus()
        assert isinstance(bus._middleware[0], TelemetryMiddleware)
        assert isinstance(on.unit_of_work().participants[0], CommitTelemetry)
        async with on.engine().connect() as conn:
            await conn.execute(text("SELECT 2"))
    assert [s.name.split()[0] for s in recorded.spans()] == ["SELECT"]

    off = KeelContainer()
    off.settings.override(KeelSettings(database={"url": url}))
    async with running(off):
        assert not any(isinstance(m, TelemetryMiddleware) for m in off.bus()._middleware)
        assert not any(isinstance(p, CommitTelemetry) for p in off.unit_of_work().participants)


@pytest.fixture
def without_otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """OpenTelemetry not importable, as without the otel extra."""
    for name in [m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    _state.otel_available.cache_clear()
    _state.use_providers(_state.Providers())  # drop the metrics cached on the real providers
    yield
    monkeypatch.undo()
    _state.otel_available.cache_clear()
    _state.use_providers(_state.Providers())


async def test_without_opentelemetry_every_helper_is_a_no_op(without_otel: None) -> None:
    """No otel extra: span helpers yield None, instruments accept calls, the middleware passes calls on."""
    from keel import Command
    from keel.service_layer.middleware import HandlerCall

    class Ping(Command):
        pass

    with span("x", a=1) as one, start_consumer_span({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) as two:
        assert one is None
        assert two is None
    metrics().cache_hits.add(1, {"namespace": "n"})
    metrics().outbox_backlog.set(3)
    metrics().handler_duration.record(0.1)
    carrier: dict[str, str] = {}
    inject_trace_context(carrier)
    assert carrier == {}

    async def call_next() -> str:
        return "done"

    assert await TelemetryMiddleware()(HandlerCall(Ping(), "h", "command"), call_next) == "done"
    participant = CommitTelemetry()
    async with InMemoryUnitOfWork(participants=[participant]) as uow:
        await uow.commit()
    with pytest.raises(ConfigurationError, match=r"keel-framework\[otel\]"):
        configure_telemetry(TelemetrySettings())


async def test_event_handler_calls_are_spans_and_counted_per_handler(recorded: Recorded) -> None:
    """An event: one span per handler call; successes and failures counted by handler; a failure stays isolated."""
    from keel import DomainEvent, MessageBus

    class Shipped(DomainEvent):
        orderid: str

    async def notify(event: Shipped) -> None:
        pass

    async def broken(event: Shipped) -> None:
        raise RuntimeError("mail server down")

    bus = MessageBus(InMemoryUnitOfWork, event_handlers={Shipped: [notify, broken]}, middleware=[TelemetryMiddleware()])
    await bus.handle(Shipped(orderid="o1"))
    spans = recorded.named("Shipped")
    assert sorted(str(dict(s.attributes or {})["keel.outcome"]) for s in spans) == ["failed", "succeeded"]
    assert {dict(s.attributes or {})["keel.message.kind"] for s in spans} == {"event"}
    assert recorded.total("keel.events.handled", message_type="Shipped") == 1
    assert recorded.total("keel.events.failed", message_type="Shipped", error="RuntimeError") == 1
