"""Small span helpers for keel's own components (event store, outbox relay, Pub/Sub).

.. code-block:: python

    with span("keel.event_store.append", stream_id=stream_id, events=len(events)):
        ...                                          # an error is recorded on the span, then propagates

    with start_consumer_span(message.attributes, "line_allocated receive", topic=topic):
        await handler(message)                       # the producer's trace continues here

Both do nothing (and cost a function call) without OpenTelemetry, and record
on the providers ``configure_telemetry`` chose (else the global ones).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from keel.cross_cutting.telemetry._propagation import extract_trace_context, inject_trace_context
from keel.cross_cutting.telemetry._state import otel_available, tracer

if TYPE_CHECKING:
    from opentelemetry.trace import Span

#: OpenTelemetry's span kinds, by name, so callers need not import OpenTelemetry.
SpanKindName = Literal["internal", "producer", "consumer", "client", "server"]

#: An attribute value OpenTelemetry accepts; ``None`` values are left out.
AttributeValue = str | bool | int | float | None


def span_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` without ``None`` values (OpenTelemetry refuses them)."""
    return {key: value for key, value in attributes.items() if value is not None}


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKindName = "internal",
    attributes: Mapping[str, AttributeValue] | None = None,
    **more: AttributeValue,
) -> Iterator[Span | None]:
    """Run the block in a span named ``name``, child of the current one; yield it (``None`` without OpenTelemetry).

    Its attributes are ``attributes`` (for dotted names, ``keel.stream_id``)
    and the keyword arguments.

    An exception leaving the block is recorded on the span (an ``exception``
    event, status ERROR) and propagates.
    """
    if not otel_available():
        yield None
        return
    from opentelemetry.trace import SpanKind

    with tracer().start_as_current_span(
        name, kind=SpanKind[kind.upper()], attributes=span_attributes({**(attributes or {}), **more})
    ) as current:
        yield current


@contextmanager
def start_consumer_span(
    carrier: Mapping[str, str],
    name: str = "keel.consume",
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    **more: AttributeValue,
) -> Iterator[Span | None]:
    """Run the block in a CONSUMER span that continues the trace whose context ``carrier`` holds.

    ``carrier`` is an incoming message's attributes (``traceparent``,
    ``tracestate``: W3C trace context, as :func:`inject_trace_context`
    writes them). Without them, the span starts a new trace.
    """
    if not otel_available():
        yield None
        return
    from opentelemetry.trace import SpanKind

    with tracer().start_as_current_span(
        name,
        context=extract_trace_context(carrier),
        kind=SpanKind.CONSUMER,
        attributes=span_attributes({**(attributes or {}), **more}),
    ) as current:
        yield current


@contextmanager
def start_producer_span(
    carrier: MutableMapping[str, str],
    name: str = "keel.publish",
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    **more: AttributeValue,
) -> Iterator[Span | None]:
    """Run the block in a PRODUCER span, child of the current context, whose W3C context it writes into ``carrier``.

    ``carrier`` is the outgoing message's attributes: a ``traceparent`` it
    already holds (the outbox row's, from the request that committed it) is
    replaced by this span's, so the consumer's span becomes its child. Without
    OpenTelemetry, ``carrier`` is left as it is.
    """
    with span(name, kind="producer", attributes=attributes, **more) as current:
        inject_trace_context(carrier)
        yield current


@contextmanager
def continue_trace(carrier: Mapping[str, str]) -> Iterator[None]:
    """Make the trace context ``carrier`` holds the current one for the block (no span of its own).

    The outbox relay publishes each row in the trace of the request that
    wrote it: the publish span joins that trace, not the relay's. A carrier
    without ``traceparent`` changes nothing.
    """
    if not otel_available() or "traceparent" not in carrier:
        yield
        return
    from opentelemetry import context

    token = context.attach(extract_trace_context(carrier))
    try:
        yield
    finally:
        context.detach(token)
