"""``keel.telemetry``: OpenTelemetry traces and metrics, and JSON logs, for a keel service.

.. code-block:: python

    telemetry = configure_telemetry(settings)            # OTLP when KEEL_TELEMETRY__OTLP_ENDPOINT is set
    configure_logging(settings)                          # JSON lines with trace/span/correlation/principal ids
    bus = MessageBus(uow_factory, ..., middleware=[TelemetryMiddleware()])
    uow = AppUnitOfWork(session_factory, participants=[CommitTelemetry()])
    instrument_engine(engine)

With ``KEEL_TELEMETRY__ENABLED=true`` the container does the last three for
its own bus, units of work and engine. See ``docs/telemetry.md``.
"""

from __future__ import annotations

from keel.cross_cutting.telemetry import (
    CommitTelemetry,
    KeelContextFilter,
    KeelJsonFormatter,
    KeelMetrics,
    Telemetry,
    TelemetryMiddleware,
    configure_logging,
    configure_telemetry,
    context_fields,
    instrument_app,
    instrument_engine,
    metrics,
    span,
    start_consumer_span,
)

__all__ = [
    "CommitTelemetry",
    "KeelContextFilter",
    "KeelJsonFormatter",
    "KeelMetrics",
    "Telemetry",
    "TelemetryMiddleware",
    "configure_logging",
    "configure_telemetry",
    "context_fields",
    "instrument_app",
    "instrument_engine",
    "metrics",
    "span",
    "start_consumer_span",
]
