"""JSON log lines from stdlib ``logging`` records, with trace, span, correlation and principal ids.

keel's modules log through the standard library (``logging.getLogger("keel...")``),
as do SQLAlchemy, uvicorn and most libraries, so the formatter works on
stdlib records: python-json-logger renders them, and :class:`KeelContextFilter`
stamps each record with the ids of the task that logged it.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, TYPE_CHECKING, Any

from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.security import current_principal
from keel.cross_cutting.telemetry._settings import TelemetrySettings
from keel.cross_cutting.telemetry._state import otel_available
from keel.service_layer.context import current_correlation_id

if TYPE_CHECKING:
    from pythonjsonlogger.json import JsonFormatter
else:
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # the otel extra is optional: keel.telemetry still imports without it

        class JsonFormatter(logging.Formatter):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise ConfigurationError("JSON logs need python-json-logger: install keel-framework[otel]")


#: The ids every line carries (``null`` when there is none).
CONTEXT_FIELDS = ("trace_id", "span_id", "correlation_id", "principal_id")


def context_fields() -> dict[str, str | None]:
    """The ids of the calling task: the current span's trace and span (hex), the correlation and the principal."""
    trace_id = span_id = None
    if otel_available():
        from opentelemetry import trace

        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            trace_id = trace.format_trace_id(span_context.trace_id)
            span_id = trace.format_span_id(span_context.span_id)
    principal = current_principal()
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "correlation_id": current_correlation_id(),
        "principal_id": principal.id if principal is not None else None,
    }


class KeelContextFilter(logging.Filter):
    """Stamps each record with :data:`CONTEXT_FIELDS`, read in the task that logs it.

    On a handler it runs when the record is emitted, before any queue or
    thread hand-off, so the ids are the logging task's.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.__dict__.update(context_fields())
        return True


class KeelJsonFormatter(JsonFormatter):
    """One JSON object per record: ``timestamp``, ``level``, ``logger``, ``message``, the ids, and any ``extra``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        if not hasattr(record, "correlation_id"):  # used without the filter: read the ids now
            record.__dict__.update(context_fields())
        super().add_fields(log_data, record, message_dict)


#: Marks the handler configure_logging installed, so a second call replaces it.
_KEEL_HANDLER = "keel"


def configure_logging(
    settings: TelemetrySettings | Any, *, stream: IO[str] | None = None, logger: logging.Logger | None = None
) -> logging.Handler:
    """Log to ``stream`` (stderr) through one handler on ``logger`` (the root); return the handler.

    ``KEEL_TELEMETRY__LOG_FORMAT=json`` (the default) writes
    :class:`KeelJsonFormatter` lines, ``text`` a plain format with the same
    ids; ``KEEL_TELEMETRY__LOG_LEVEL`` sets the level. Calling it again
    replaces the handler it installed before and leaves other handlers alone.
    """
    section: TelemetrySettings = settings if isinstance(settings, TelemetrySettings) else settings.telemetry
    target = logger if logger is not None else logging.getLogger()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_KEEL_HANDLER)
    handler.addFilter(KeelContextFilter())
    if section.log_format == "json":
        handler.setFormatter(KeelJsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s "
                "correlation=%(correlation_id)s principal=%(principal_id)s] %(message)s"
            )
        )
    for old in [h for h in target.handlers if h.get_name() == _KEEL_HANDLER]:
        target.removeHandler(old)
    target.addHandler(handler)
    target.setLevel(section.log_level.upper())
    return handler
