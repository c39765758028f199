"""``configure_telemetry`` and ``instrument_engine``: where spans and metrics go, and SQL spans.

.. code-block:: python

    telemetry = configure_telemetry(settings)          # OTLP when KEEL_TELEMETRY__OTLP_ENDPOINT is set
    instrument_engine(engine)                          # SQL spans, children of the current span
    ...
    telemetry.shutdown()                               # flush what is buffered
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.telemetry._settings import TelemetrySettings
from keel.cross_cutting.telemetry._state import (
    Providers,
    current_providers,
    follow_current_tracer,
    meter,
    otel_available,
    use_providers,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider


class HasTelemetrySettings(Protocol):
    """Settings with a ``telemetry`` section (``keel.config.KeelSettings`` and its subclasses)."""

    @property
    def telemetry(self) -> TelemetrySettings:
        """The ``KEEL_TELEMETRY__*`` section."""
        ...


@dataclass
class Telemetry:
    """The providers keel records on since :func:`configure_telemetry`; ``shutdown()`` undoes it."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    #: Whether keel built the providers (then ``shutdown`` flushes and closes them).
    owned: bool
    _previous: Providers = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    def shutdown(self) -> None:
        """Flush and close the providers keel built; keel records on the previous ones again."""
        if self._closed:
            return
        self._closed = True
        if current_providers() == Providers(self.tracer_provider, self.meter_provider):
            use_providers(self._previous)
        if self.owned:
            # keel built SDK providers: the API's base classes have no shutdown().
            for provider in (self.tracer_provider, self.meter_provider):
                getattr(provider, "shutdown")()  # noqa: B009


def _require_otel() -> None:
    if not otel_available():
        raise ConfigurationError(
            "telemetry needs OpenTelemetry: install keel-framework[otel]", variables=["KEEL_TELEMETRY__ENABLED"]
        )


def configure_telemetry(
    settings: HasTelemetrySettings | TelemetrySettings,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Telemetry:
    """Make keel record its spans and metrics on these providers (built from ``settings`` when not given).

    Providers passed in are used as they are (tests hand in the SDK's
    in-memory exporters), and OpenTelemetry's global providers are left
    alone. Providers keel builds export over OTLP/HTTP when
    ``KEEL_TELEMETRY__OTLP_ENDPOINT`` is set, to stdout with
    ``KEEL_TELEMETRY__CONSOLE=true``, nowhere otherwise (trace ids still reach
    the logs); they also become OpenTelemetry's global providers when none is
    set yet, so other instrumentation (HTTP servers, clients) joins the same
    traces. Calling it again replaces the providers keel records on.
    """
    _require_otel()
    section = settings if isinstance(settings, TelemetrySettings) else settings.telemetry
    owned = tracer_provider is None and meter_provider is None
    resource = None
    if tracer_provider is None or meter_provider is None:
        from opentelemetry.sdk.resources import Resource

        resource = Resource.create({"service.name": section.service_name})
    if tracer_provider is None:
        tracer_provider = _build_tracer_provider(section, resource)
        _set_global_tracer_provider(tracer_provider)
    if meter_provider is None:
        meter_provider = _build_meter_provider(section, resource)
        _set_global_meter_provider(meter_provider)
    previous = use_providers(Providers(tracer_provider, meter_provider))
    return Telemetry(tracer_provider, meter_provider, owned, previous)


def _build_tracer_provider(section: TelemetrySettings, resource: Any) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = SdkTracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(section.sample_ratio)))
    if section.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = section.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif section.console:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return provider


def _build_meter_provider(section: TelemetrySettings, resource: Any) -> MeterProvider:
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, PeriodicExportingMetricReader

    exporter: MetricExporter | None = None
    if section.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=section.otlp_endpoint.rstrip("/") + "/v1/metrics")
    elif section.console:
        exporter = ConsoleMetricExporter()
    readers = []
    if exporter is not None:
        interval = int(section.metrics_interval * 1000)
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval))
    return SdkMeterProvider(resource=resource, metric_readers=readers)


def _set_global_tracer_provider(provider: TracerProvider) -> None:
    from opentelemetry import trace

    # Set-once in OpenTelemetry: a second call would log a warning and change nothing.
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)


def _set_global_meter_provider(provider: MeterProvider) -> None:
    from opentelemetry import metrics
    from opentelemetry.metrics import NoOpMeterProvider

    current = metrics.get_meter_provider()
    # The default global is a proxy (a private class); anything else was set by someone.
    if type(current).__name__ == "_ProxyMeterProvider" and not isinstance(current, NoOpMeterProvider):
        metrics.set_meter_provider(provider)


#: Engines already instrumented (weakly: instrumenting must not keep an engine alive).
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def instrument_engine(engine: Any) -> Any:
    """Give ``engine`` (an ``Engine`` or ``AsyncEngine``) SQL spans; return it. Instrumenting twice is harmless.

    Each statement becomes a CLIENT span, child of the span current when it
    runs (a handler's, a commit's), recorded on the providers keel uses at
    that moment, so the order of ``configure_telemetry`` and this call does
    not matter.
    """
    _require_otel()
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    sync_engine = getattr(engine, "sync_engine", engine)
    if sync_engine in _instrumented:
        return engine
    # SQLAlchemyInstrumentor().instrument(engine=...) is a process-wide singleton that refuses a
    # second call ("already instrumented") and patches create_engine for every engine; the
    # per-engine EngineTracer it builds is what keel needs.
    usage = meter().create_up_down_counter(
        "db.client.connections.usage", unit="connections", description="Connections in use or idle"
    )
    EngineTracer(follow_current_tracer(), sync_engine, usage)  # type: ignore[no-untyped-call]  # untyped upstream
    _instrumented.add(sync_engine)
    return engine
