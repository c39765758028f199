"""JSON log lines from stdlib records carry the trace, span, correlation and principal ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from keel.config import TelemetrySettings
from keel.security import Principal, as_principal
from keel.service_layer.context import message_context
from keel.telemetry import KeelJsonFormatter, configure_logging, span
from tests.telemetry.conftest import Recorded


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.telemetry.json")
    logger.propagate = False
    yield logger
    logger.handlers.clear()
    logger.propagate = True


def test_a_log_line_is_json_with_the_trace_span_correlation_and_principal(
    recorded: Recorded, logger: logging.Logger
) -> None:
    """Logged inside a span, a correlation and a principal: the line is JSON naming all four, plus the extras."""
    stream = io.StringIO()
    configure_logging(TelemetrySettings(), stream=stream, logger=logger)
    with (
        message_context(correlation_id="corr-9"),
        as_principal(Principal(id="alice")),
        span("handle") as active,
    ):
        logger.info("allocated %s", "LAMP", extra={"keel_handler": "allocate"})
    assert active is not None
    line = json.loads(stream.getvalue())
    context = active.get_span_context()
    assert line["message"] == "allocated LAMP"
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.telemetry.json"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["correlation_id"] == "corr-9"
    assert line["principal_id"] == "alice"
    assert line["keel_handler"] == "allocate"
    assert "timestamp" in line


def test_outside_any_span_the_ids_are_null_and_errors_keep_their_traceback(logger: logging.Logger) -> None:
    """No trace, correlation or principal: the ids are null; logger.exception adds exc_info to the JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeelJsonFormatter())  # the formatter alone, without configure_logging's filter
    logger.addHandler(handler)
    try:
        int("bad")
    except ValueError:
        logger.exception("failed")
    line = json.loads(stream.getvalue())
    assert line["trace_id"] is None
    assert line["span_id"] is None
    assert line["correlation_id"] is None
    assert line["principal_id"] is None
    assert "ValueError: invalid literal" in line["exc_info"]


def test_configuring_twice_replaces_keels_handler_and_text_format_keeps_the_ids(logger: logging.Logger) -> None:
    """A second configure_logging swaps its own handler (others stay); the text format shows the ids too."""
    other = logging.NullHandler()
    logger.addHandler(other)
    configure_logging(TelemetrySettings(), stream=io.StringIO(), logger=logger)
    stream = io.StringIO()
    configure_logging(TelemetrySettings(log_format="text", log_level="debug"), stream=stream, logger=logger)
    assert [h for h in logger.handlers if h.get_name() == "keel"] == [logger.handlers[-1]]
    assert other in logger.handlers
    assert logger.level == logging.DEBUG
    with message_context(correlation_id="corr-t"):
        logger.debug("hello")
    assert "correlation=corr-t" in stream.getvalue()
    assert stream.getvalue().rstrip().endswith("hello")
