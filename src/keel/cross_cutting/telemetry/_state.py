"""Which tracer and meter keel records on: the ones ``configure_telemetry`` was given, else OpenTelemetry's global.

OpenTelemetry's global providers can be set once per process. keel keeps
its own reference instead, replaceable at any time, so every test can hand
in fresh in-memory providers and an application can configure keel without
touching the global. Everything in this package reads the reference when it
records (not when it is built), so the order of start-up steps does not
matter: an engine instrumented before ``configure_telemetry`` still reports
to the providers configured after.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider

#: The instrumentation scope of everything keel records.
SCOPE = "keel"


@functools.cache
def otel_available() -> bool:
    """Whether the OpenTelemetry API is importable (the ``otel`` extra)."""
    try:
        import opentelemetry.trace  # noqa: F401 -- probing the optional extra
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Providers:
    """The providers keel records on; ``None``: OpenTelemetry's global one."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None


_providers = Providers()
_tracer: Tracer | None = None
_meter: Meter | None = None
#: Bumped on every change, so caches built on the old providers (the metrics) know to rebuild.
_generation = 0


def current_providers() -> Providers:
    """The providers in use (``None`` fields: the global ones)."""
    return _providers


def use_providers(providers: Providers) -> Providers:
    """Record on ``providers`` from now on; return the previous ones (to restore them)."""
    global _providers, _tracer, _meter, _generation  # noqa: PLW0603 -- the one process-wide reference, by design
    previous = _providers
    _providers = providers
    _tracer = _meter = None
    _generation += 1
    return previous


def generation() -> int:
    """Changes whenever the providers do."""
    return _generation


def tracer() -> Tracer:
    """keel's tracer on the current provider (call only when :func:`otel_available`)."""
    global _tracer  # noqa: PLW0603 -- a cache of the reference above
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.get_tracer(SCOPE, tracer_provider=_providers.tracer_provider)
    return _tracer


def meter() -> Meter:
    """keel's meter on the current provider (call only when :func:`otel_available`)."""
    global _meter  # noqa: PLW0603 -- a cache of the reference above
    if _meter is None:
        from opentelemetry import metrics

        _meter = metrics.get_meter(SCOPE, meter_provider=_providers.meter_provider)
    return _meter


def follow_current_tracer() -> Any:
    """A tracer that starts every span on keel's current provider, whichever that is by then.

    Given to the SQLAlchemy instrumentation, which keeps the tracer it is
    built with.
    """
    from opentelemetry import trace

    class _Following(trace.Tracer):
        def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
            return tracer().start_span(*args, **kwargs)

        def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
            return tracer().start_as_current_span(*args, **kwargs)

    return _Following()
