"""Span helpers, and W3C trace context carried in message attributes from producer to consumer."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from keel.cross_cutting.telemetry import extract_trace_context, inject_trace_context
from keel.infrastructure.message_metadata import current_metadata
from keel.telemetry import span, start_consumer_span
from tests.telemetry.conftest import Recorded


def test_a_traceparent_injected_by_a_producer_continues_the_trace_in_the_consumer(recorded: Recorded) -> None:
    """publish span -> traceparent attribute -> consumer span: one trace, the consumer a child of the producer."""
    attributes: dict[str, str] = {}
    with span("line_allocated publish", kind="producer", topic="line_allocated") as producer:
        assert producer is not None
        inject_trace_context(attributes)
    assert attributes["traceparent"].startswith("00-")

    with start_consumer_span(attributes, "line_allocated receive", subscription="sub") as consumer:
        assert consumer is not None
        with span("keel.inbox.handle"):
            pass

    published = recorded.one("line_allocated publish")
    received = recorded.one("line_allocated receive")
    inner = recorded.one("keel.inbox.handle")
    assert published.kind is SpanKind.PRODUCER
    assert received.kind is SpanKind.CONSUMER
    assert received.context.trace_id == published.context.trace_id
    assert received.parent is not None
    assert received.parent.span_id == published.context.span_id
    assert received.parent.is_remote
    assert inner.parent is not None
    assert inner.parent.span_id == received.context.span_id
    assert dict(received.attributes or {}) == {"subscription": "sub"}


def test_message_metadata_carries_the_active_trace(recorded: Recorded) -> None:
    """current_metadata() (outbox rows, event store metadata) holds the traceparent of the active span."""
    with span("request") as active:
        assert active is not None
        metadata = current_metadata()
    trace_id = format(active.get_span_context().trace_id, "032x")
    assert metadata["traceparent"].split("-")[1] == trace_id
    assert extract_trace_context(metadata) is not None


def test_a_consumer_span_without_trace_context_starts_a_new_trace(recorded: Recorded) -> None:
    """Attributes without a traceparent: the consumer span is a root."""
    with start_consumer_span({}, "orphan receive"):
        pass
    assert recorded.one("orphan receive").parent is None


def test_an_error_leaving_a_span_block_is_recorded_and_propagates(recorded: Recorded) -> None:
    """span(...) records the exception as an event, sets status ERROR, and re-raises; None attributes are left out."""
    with pytest.raises(RuntimeError, match="relay down"), span("keel.outbox.relay_batch", size=3, topic=None):
        raise RuntimeError("relay down")
    batch = recorded.one("keel.outbox.relay_batch")
    assert batch.status.status_code is StatusCode.ERROR
    assert dict(batch.attributes or {}) == {"size": 3}
    assert [event.name for event in batch.events] == ["exception"]
