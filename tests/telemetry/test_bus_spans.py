"""Spans and metrics of the bus middleware and the commit participant, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel import Command, MessageBus, NotFoundError, RetryPolicy
from keel.security import Principal, as_principal
from keel.service_layer.context import message_context
from keel.telemetry import CommitTelemetry, TelemetryMiddleware, instrument_engine
from tests.models import AppUnitOfWork, Product
from tests.telemetry.conftest import Recorded


class Allocate(Command):
    sku: str
    qty: int


async def allocate(cmd: Allocate, uow: AppUnitOfWork) -> int:
    async with uow:
        product = await uow.products.get(cmd.sku)
        product.allocate(cmd.qty)
        await uow.commit()
        return product.stock


def make_bus(session_factory: async_sessionmaker[AsyncSession], **kwargs: Any) -> MessageBus:
    participant = CommitTelemetry()
    return MessageBus(
        lambda: AppUnitOfWork(session_factory, participants=[participant]),
        command_handlers={Allocate: allocate},
        middleware=[TelemetryMiddleware()],
        **kwargs,
    )


async def seed(session_factory: async_sessionmaker[AsyncSession], stock: int = 10) -> None:
    async with AppUnitOfWork(session_factory) as uow:
        uow.products.add(Product(sku="LAMP", stock=stock))
        await uow.commit()


async def test_the_bus_span_is_the_parent_of_the_sql_and_commit_spans(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], recorded: Recorded
) -> None:
    """A command: a span named after it, parent of its SELECT and of the commit span (parent of the UPDATE)."""
    instrument_engine(engine)
    await seed(session_factory)
    recorded.exporter.clear()
    with message_context(correlation_id="corr-1"), as_principal(Principal(id="alice")):
        assert await make_bus(session_factory).handle(Allocate(sku="LAMP", qty=2)) == 8

    bus_span = recorded.one("Allocate")
    commit = recorded.one("keel.uow.commit")
    attributes = dict(bus_span.attributes or {})
    assert attributes["keel.message.type"] == "Allocate"
    assert attributes["keel.message.kind"] == "command"
    assert str(attributes["keel.handler"]).endswith("allocate")
    assert attributes["keel.outcome"] == "succeeded"
    assert attributes["keel.correlation_id"] == "corr-1"
    assert attributes["enduser.id"] == "alice"
    assert bus_span.parent is None
    assert commit.parent is not None
    assert commit.parent.span_id == bus_span.context.span_id
    assert commit.context.trace_id == bus_span.context.trace_id
    assert dict(commit.attributes or {})["keel.outcome"] == "committed"

    sql = [span for span in recorded.spans() if span.kind is SpanKind.CLIENT]
    assert sql, "the instrumented engine made no SQL spans"
    assert all(span.context.trace_id == bus_span.context.trace_id for span in sql)
    parents = {span.parent.span_id for span in sql if span.parent is not None}
    assert bus_span.context.span_id in parents, "the SELECT is a child of the bus span"
    assert commit.context.span_id in parents, "the UPDATE of the flush is a child of the commit span"
    assert any("UPDATE" in span.name or "UPDATE" in str(span.attributes) for span in sql)

    assert recorded.total("keel.commands.handled", message_type="Allocate") == 1
    durations = recorded.points("keel.handler.duration")
    assert [point.count for point in durations] == [1]
    assert dict(durations[0].attributes)["outcome"] == "succeeded"


async def test_a_failing_command_records_its_exception_and_counts_a_failure(
    session_factory: async_sessionmaker[AsyncSession], recorded: Recorded
) -> None:
    """A handler's error is an exception event on the bus span, status ERROR, outcome failed, a failure counted."""
    with pytest.raises(NotFoundError):
        await make_bus(session_factory).handle(Allocate(sku="NOPE", qty=1))
    bus_span = recorded.one("Allocate")
    assert bus_span.status.status_code is StatusCode.ERROR
    attributes = dict(bus_span.attributes or {})
    assert attributes["keel.outcome"] == "failed"
    assert attributes["keel.error"] == "NotFoundError"
    assert attributes["keel.error.code"] == "not_found"
    events = [event for event in bus_span.events if event.name == "exception"]
    assert events
    assert str(dict(events[0].attributes or {})["exception.type"]).endswith("NotFoundError")
    assert recorded.total("keel.commands.failed", message_type="Allocate", error="NotFoundError") == 1
    assert recorded.total("keel.commands.handled") == 0


async def test_every_conflicting_commit_is_counted_and_its_span_records_the_error(
    session_factory: async_sessionmaker[AsyncSession], recorded: Recorded
) -> None:
    """Commits refused with ConcurrencyError are counted per attempt (inside the bus's retries) and end their spans."""
    await seed(session_factory)
    calls = 0

    async def contended(cmd: Allocate, uow: AppUnitOfWork) -> int:
        nonlocal calls
        calls += 1
        async with uow:
            product = await uow.products.get(cmd.sku)
            if calls < 3:  # a concurrent writer commits between this read and this commit
                async with AppUnitOfWork(session_factory) as other:
                    (await other.products.get(cmd.sku)).allocate(1)
                    await other.commit()
            product.allocate(cmd.qty)
            await uow.commit()
            return product.stock

    participant = CommitTelemetry()
    bus = MessageBus(
        lambda: AppUnitOfWork(session_factory, participants=[participant]),
        command_handlers={Allocate: contended},
        middleware=[TelemetryMiddleware()],
        command_retry=RetryPolicy(max_attempts=5, initial_backoff=0, max_backoff=0, jitter=0),
    )
    recorded.exporter.clear()
    assert await bus.handle(Allocate(sku="LAMP", qty=1)) == 7
    assert recorded.total("keel.concurrency.conflicts") == 2
    commits = recorded.named("keel.uow.commit")
    failed = [span for span in commits if span.status.status_code is StatusCode.ERROR]
    assert len(failed) == 2
    assert all(any(e.name == "exception" for e in span.events) for span in failed)
    assert dict(recorded.one("Allocate").attributes or {})["keel.outcome"] == "succeeded"
    assert recorded.total("keel.commands.handled", message_type="Allocate") == 1
