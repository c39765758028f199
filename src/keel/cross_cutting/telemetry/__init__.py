"""Telemetry: W3C trace context for messages (tracing and metrics set-up join with the telemetry issue)."""

from __future__ import annotations

from keel.cross_cutting.telemetry._propagation import extract_trace_context as extract_trace_context
from keel.cross_cutting.telemetry._propagation import inject_trace_context as inject_trace_context
