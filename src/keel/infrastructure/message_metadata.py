"""The metadata keel writes beside every message it stores or sends.

One function, used by the outbox writer and the event store alike, so an
event carries the same correlation, causation, principal and trace context
wherever it goes. Every value is a string: Pub/Sub attributes are strings.
"""

from __future__ import annotations

from keel.cross_cutting.security import current_principal
from keel.cross_cutting.telemetry import inject_trace_context
from keel.service_layer.context import current_causation_id, current_correlation_id

#: The metadata keys keel writes (``traceparent``/``tracestate`` only while a trace is active).
CORRELATION_ID = "correlation_id"
CAUSATION_ID = "causation_id"
PRINCIPAL = "principal"


def current_metadata() -> dict[str, str]:
    """The correlation and causation ids, the principal (as JSON) and the trace context of this task."""
    metadata: dict[str, str] = {}
    correlation = current_correlation_id()
    if correlation is not None:
        metadata[CORRELATION_ID] = correlation
    causation = current_causation_id()
    if causation is not None:
        metadata[CAUSATION_ID] = causation
    principal = current_principal()
    if principal is not None:
        metadata[PRINCIPAL] = principal.model_dump_json()
    inject_trace_context(metadata)
    return metadata
