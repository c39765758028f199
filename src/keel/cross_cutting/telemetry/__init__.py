"""Telemetry: OpenTelemetry spans and metrics, W3C trace context for messages, JSON logs.

The public path of the user-facing names is :mod:`keel.telemetry`. keel's
own components call the helpers here (``span``, ``start_consumer_span``,
``metrics``, ``inject_trace_context``); every one of them is a no-op when
OpenTelemetry (the ``otel`` extra) is not installed.
"""

from __future__ import annotations

from keel.cross_cutting.telemetry._asgi import instrument_app as instrument_app
from keel.cross_cutting.telemetry._commit import CommitTelemetry as CommitTelemetry
from keel.cross_cutting.telemetry._logging import KeelContextFilter as KeelContextFilter
from keel.cross_cutting.telemetry._logging import KeelJsonFormatter as KeelJsonFormatter
from keel.cross_cutting.telemetry._logging import configure_logging as configure_logging
from keel.cross_cutting.telemetry._logging import context_fields as context_fields
from keel.cross_cutting.telemetry._metrics import KeelMetrics as KeelMetrics
from keel.cross_cutting.telemetry._metrics import metrics as metrics
from keel.cross_cutting.telemetry._middleware import TelemetryMiddleware as TelemetryMiddleware
from keel.cross_cutting.telemetry._observed import CacheMetricsListener as CacheMetricsListener
from keel.cross_cutting.telemetry._observed import observe_replica_stats as observe_replica_stats
from keel.cross_cutting.telemetry._observed import record_cache_stats as record_cache_stats
from keel.cross_cutting.telemetry._propagation import extract_trace_context as extract_trace_context
from keel.cross_cutting.telemetry._propagation import inject_trace_context as inject_trace_context
from keel.cross_cutting.telemetry._settings import TelemetrySettings as TelemetrySettings
from keel.cross_cutting.telemetry._setup import Telemetry as Telemetry
from keel.cross_cutting.telemetry._setup import configure_telemetry as configure_telemetry
from keel.cross_cutting.telemetry._setup import instrument_engine as instrument_engine
from keel.cross_cutting.telemetry._spans import continue_trace as continue_trace
from keel.cross_cutting.telemetry._spans import span as span
from keel.cross_cutting.telemetry._spans import start_consumer_span as start_consumer_span
from keel.cross_cutting.telemetry._spans import start_producer_span as start_producer_span
