"""A commit participant that wraps each unit-of-work commit in a ``keel.uow.commit`` span.

The span opens at ``before_flush`` (the first phase of ``commit()``) and is
made current, so the flush's and the commit's SQL spans are its children; it
ends at ``after_commit``, or at ``commit_failed`` with the error recorded.
Put it first among the participants so that it covers the others. A commit
refused with :class:`keel.ConcurrencyError` is counted here, once per
attempt: the bus retries such commands inside its middleware's
``call_next``, where a middleware only sees the last attempt.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import Any

from keel.cross_cutting.telemetry._metrics import metrics
from keel.cross_cutting.telemetry._state import otel_available, tracer
from keel.domain.errors import ConcurrencyError
from keel.domain.messages import DomainEvent
from keel.service_layer.participants import Participant
from keel.service_layer.unit_of_work import AbstractUnitOfWork

SPAN_NAME = "keel.uow.commit"


class CommitTelemetry(Participant[AbstractUnitOfWork]):
    """Spans and a duration per commit, and the count of concurrency conflicts.

    One instance serves any number of units of work at once: each open span
    is kept per unit of work (weakly, so an abandoned one is not kept alive).
    """

    def __init__(self) -> None:
        self._open: weakref.WeakKeyDictionary[AbstractUnitOfWork, tuple[Any, Any, float]] = weakref.WeakKeyDictionary()

    async def before_flush(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        if not otel_available():
            return
        from opentelemetry import context, trace

        span = tracer().start_span(
            SPAN_NAME, attributes={"keel.uow": type(uow).__name__, "keel.uow.events": len(events)}
        )
        token = context.attach(trace.set_span_in_context(span))
        self._open[uow] = (span, token, time.perf_counter())

    async def after_commit(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        self._finish(uow, None)

    def commit_failed(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent], error: BaseException) -> None:
        if isinstance(error, ConcurrencyError):
            metrics().concurrency_conflicts.add(1, {"uow": type(uow).__name__})
        self._finish(uow, error)

    def _finish(self, uow: AbstractUnitOfWork, error: BaseException | None) -> None:
        opened = self._open.pop(uow, None)
        if opened is None:  # an earlier participant failed before this one opened its span
            return
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span, token, started = opened
        context.detach(token)
        outcome = "committed" if error is None else "failed"
        span.set_attribute("keel.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
        metrics().commit_duration.record(time.perf_counter() - started, {"outcome": outcome})
