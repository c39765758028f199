"""Bus middleware: a span and metrics per handler call.

The span is named after the message type (``Allocate``), is the parent of
everything the handler does (its SQL, its commit), and carries the message
type, its kind, the handler, the correlation id, the principal
(``enduser.id``), the outcome and, on failure, the error (also recorded as
an ``exception`` event). The bus retries inside ``call_next``,
so one span and one duration cover every attempt; the commit participant
(:mod:`._commit`) sees each attempt's commit.
"""

from __future__ import annotations

import time
from typing import Any

from keel.cross_cutting.security import current_principal
from keel.cross_cutting.telemetry._metrics import metrics
from keel.cross_cutting.telemetry._state import otel_available, tracer
from keel.domain.errors import AuthorizationError, KeelError
from keel.service_layer.context import current_correlation_id
from keel.service_layer.middleware import CallNext, HandlerCall

#: Span attribute names.
MESSAGE_TYPE = "keel.message.type"
MESSAGE_KIND = "keel.message.kind"
HANDLER = "keel.handler"
OUTCOME = "keel.outcome"
ERROR = "keel.error"
ERROR_CODE = "keel.error.code"
CORRELATION_ID = "keel.correlation_id"
#: OpenTelemetry's semantic convention for the acting user.
PRINCIPAL_ID = "enduser.id"


class TelemetryMiddleware:
    """Traces and measures every handler call; give it to ``MessageBus(middleware=[...])``, outermost.

    Records on the providers ``configure_telemetry`` chose (else the global
    ones); without OpenTelemetry it only passes the call on.
    """

    async def __call__(self, call: HandlerCall, call_next: CallNext, /) -> Any:
        if not otel_available():
            return await call_next()
        from opentelemetry.trace import SpanKind

        message_type = call.message.message_type
        attributes: dict[str, Any] = {MESSAGE_TYPE: message_type, MESSAGE_KIND: call.kind, HANDLER: call.handler}
        correlation = current_correlation_id()
        if correlation is not None:
            attributes[CORRELATION_ID] = correlation
        principal = current_principal()
        if principal is not None:
            attributes[PRINCIPAL_ID] = principal.id
        instruments = metrics()
        started = time.perf_counter()
        with tracer().start_as_current_span(message_type, kind=SpanKind.INTERNAL, attributes=attributes) as span:
            try:
                result = await call_next()
            except Exception as exc:
                outcome = "denied" if isinstance(exc, AuthorizationError) else "failed"
                span.set_attribute(OUTCOME, outcome)
                span.set_attribute(ERROR, type(exc).__name__)
                if isinstance(exc, KeelError):
                    span.set_attribute(ERROR_CODE, exc.code)
                labels = {"message_type": message_type, "kind": call.kind, "outcome": outcome}
                instruments.handler_duration.record(time.perf_counter() - started, labels)
                failed = {"message_type": message_type, "error": type(exc).__name__}
                if call.kind == "command":
                    instruments.commands_failed.add(1, failed)
                else:
                    instruments.events_failed.add(1, {**failed, "handler": call.handler})
                raise
            span.set_attribute(OUTCOME, "succeeded")
        labels = {"message_type": message_type, "kind": call.kind, "outcome": "succeeded"}
        instruments.handler_duration.record(time.perf_counter() - started, labels)
        if call.kind == "command":
            instruments.commands_handled.add(1, {"message_type": message_type})
        else:
            instruments.events_handled.add(1, {"message_type": message_type, "handler": call.handler})
        return result
