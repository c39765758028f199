"""W3C trace context in message attributes, so one trace runs from a request to a consumer.

Both functions do nothing when OpenTelemetry (the ``otel`` extra) is not
installed, so callers need no guard.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any


def inject_trace_context(carrier: MutableMapping[str, str]) -> None:
    """Write ``traceparent`` (and ``tracestate``) of the active span into ``carrier``, if a trace is active."""
    try:
        from opentelemetry import propagate
    except ImportError:  # the otel extra is optional
        return
    propagate.inject(carrier)


def extract_trace_context(carrier: Mapping[str, str]) -> Any:
    """The OpenTelemetry context carried by ``carrier`` (``None`` without OpenTelemetry)."""
    try:
        from opentelemetry import propagate
    except ImportError:  # the otel extra is optional
        return None
    return propagate.extract(carrier)
