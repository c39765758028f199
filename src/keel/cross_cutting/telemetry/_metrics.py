"""keel's metric instruments, by name, for every component to record on.

.. code-block:: python

    metrics().cache_hits.add(1, {"namespace": "products"})
    metrics().outbox_backlog.set(pending)

Call :func:`metrics` where you record rather than keeping its result: it is
rebuilt when ``configure_telemetry`` changes the providers. Without
OpenTelemetry every instrument is a no-op, so callers need no guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from keel.cross_cutting.telemetry._state import generation, meter, otel_available


class Counter(Protocol):
    """A monotonic sum (``add``)."""

    def add(self, amount: int | float, attributes: Mapping[str, Any] | None = None) -> None:
        """Add ``amount``."""


class Histogram(Protocol):
    """A distribution (``record``)."""

    def record(self, amount: int | float, attributes: Mapping[str, Any] | None = None) -> None:
        """Record one measurement."""


class Gauge(Protocol):
    """A value measured now (``set``)."""

    def set(self, amount: int | float, attributes: Mapping[str, Any] | None = None) -> None:
        """Set the current value."""


@dataclass(frozen=True, slots=True)
class KeelMetrics:
    """Every instrument keel records on (names in ``docs/telemetry.md``)."""

    #: ``keel.commands.handled``: commands whose handler succeeded (``message_type``).
    commands_handled: Counter
    #: ``keel.commands.failed``: commands whose handler raised (``message_type``, ``error``).
    commands_failed: Counter
    #: ``keel.events.handled``: event handler calls that succeeded (``message_type``, ``handler``).
    events_handled: Counter
    #: ``keel.events.failed``: event handler calls that failed for good (``message_type``, ``handler``, ``error``).
    events_failed: Counter
    #: ``keel.handler.duration`` (s): one handler call, retries included (``message_type``, ``kind``, ``outcome``).
    handler_duration: Histogram
    #: ``keel.concurrency.conflicts``: commits refused with ``ConcurrencyError``, every attempt counted.
    concurrency_conflicts: Counter
    #: ``keel.uow.commit.duration`` (s): one unit-of-work commit (``outcome``).
    commit_duration: Histogram
    #: ``keel.cache.hits`` / ``keel.cache.misses`` (``namespace``).
    cache_hits: Counter
    cache_misses: Counter
    #: ``keel.cache.errors``: cache operations that failed and fell through to the database.
    cache_errors: Counter
    #: ``keel.outbox.backlog``: outbox messages waiting to be relayed.
    outbox_backlog: Gauge
    #: ``keel.outbox.oldest_age`` (s): age of the oldest waiting outbox message.
    outbox_oldest_age: Gauge
    #: ``keel.outbox.relayed``: messages the relay published (``topic``).
    outbox_relayed: Counter
    #: ``keel.outbox.relay_failures``: messages whose publication failed (``topic``).
    outbox_relay_failures: Counter


class _NoOp:
    def add(self, amount: int | float, attributes: Mapping[str, Any] | None = None) -> None:
        """Nothing: OpenTelemetry is not installed."""

    def record(self, amount: int | float, attributes: Mapping[str, Any] | None = None) -> None:
        """Nothing: OpenTelemetry is not installed."""

    def set(self, amount: int | float, attributes: Mapping[str, Any] | None = None) -> None:
        """Nothing: OpenTelemetry is not installed."""


_cached: tuple[int, KeelMetrics] | None = None


def metrics() -> KeelMetrics:
    """keel's instruments on the current meter provider."""
    global _cached  # noqa: PLW0603 -- rebuilt when the providers change, never per call
    current = generation()
    if _cached is None or _cached[0] != current:
        _cached = (current, _build())
    return _cached[1]


def _build() -> KeelMetrics:
    if not otel_available():
        noop = _NoOp()
        return KeelMetrics(*(noop,) * len(KeelMetrics.__dataclass_fields__))
    m = meter()
    from keel.cross_cutting.telemetry._observed import create_replica_instruments

    create_replica_instruments(m)
    return KeelMetrics(
        commands_handled=m.create_counter("keel.commands.handled", "{command}", "Commands handled successfully"),
        commands_failed=m.create_counter("keel.commands.failed", "{command}", "Commands whose handler failed"),
        events_handled=m.create_counter("keel.events.handled", "{call}", "Event handler calls that succeeded"),
        events_failed=m.create_counter("keel.events.failed", "{call}", "Event handler calls that failed"),
        handler_duration=m.create_histogram("keel.handler.duration", "s", "Handler call duration, retries included"),
        concurrency_conflicts=m.create_counter(
            "keel.concurrency.conflicts", "{conflict}", "Commits refused with ConcurrencyError"
        ),
        commit_duration=m.create_histogram("keel.uow.commit.duration", "s", "Unit-of-work commit duration"),
        cache_hits=m.create_counter("keel.cache.hits", "{hit}", "Cache reads that found the entry"),
        cache_misses=m.create_counter("keel.cache.misses", "{miss}", "Cache reads that did not"),
        cache_errors=m.create_counter("keel.cache.errors", "{error}", "Cache operations that failed"),
        outbox_backlog=m.create_gauge("keel.outbox.backlog", "{message}", "Outbox messages waiting"),
        outbox_oldest_age=m.create_gauge("keel.outbox.oldest_age", "s", "Age of the oldest waiting outbox message"),
        outbox_relayed=m.create_counter("keel.outbox.relayed", "{message}", "Outbox messages published"),
        outbox_relay_failures=m.create_counter(
            "keel.outbox.relay_failures", "{message}", "Outbox messages whose publication failed"
        ),
    )
