"""The idempotent consumer: each message applied once, under duplicates and concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.config import OutboxSettings
from keel.domain.messages import utcnow
from keel.domain.ports import IncomingMessage
from keel.outbox import IdempotentConsumer, inbox, message_key, purge
from keel.security import Principal, current_principal
from keel.service_layer.context import current_causation_id, current_correlation_id
from tests.models import AppUnitOfWork, Counter


def message(event_id: str | None, broker_id: str = "b-1", **attributes: str) -> IncomingMessage:
    attrs = dict(attributes)
    if event_id is not None:
        attrs["event_id"] = event_id
    return IncomingMessage(data=b"{}", attributes=attrs, message_id=broker_id, subscription="s")


async def add_to_counter(incoming: IncomingMessage, uow: AppUnitOfWork) -> None:
    await uow.session.execute(update(Counter).where(Counter.id == 1).values(value=Counter.value + 1))


@pytest.fixture
async def counted(session_factory: async_sessionmaker[AsyncSession]) -> Callable[[], AppUnitOfWork]:
    async with AppUnitOfWork(session_factory) as uow:
        uow.counters.add(Counter(id=1, value=0))
        await uow.commit()
    return lambda: AppUnitOfWork(session_factory)


async def counter(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(Counter.value).where(Counter.id == 1))).scalar_one())


async def test_a_duplicate_is_skipped(
    counted: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The same event delivered again (even under another broker id) is acknowledged without running the handler."""
    consumer = IdempotentConsumer("count", add_to_counter, counted)
    await consumer(message("e-1", "b-1"))
    await consumer(message("e-1", "b-2"))
    await consumer(message(None, "b-9"))
    await consumer(message(None, "b-9"))
    assert await counter(session_factory) == 2
    other = IdempotentConsumer("audit", add_to_counter, counted)
    await other(message("e-1"))  # each consumer applies a message once
    assert await counter(session_factory) == 3


async def test_a_failed_handler_is_applied_on_redelivery(
    counted: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A handler that raises leaves no inbox row: the broker's redelivery runs it again."""
    failures = [RuntimeError("first try fails")]

    async def flaky(incoming: IncomingMessage, uow: AppUnitOfWork) -> None:
        await add_to_counter(incoming, uow)
        if failures:
            raise failures.pop()

    consumer = IdempotentConsumer("count", flaky, counted)
    with pytest.raises(RuntimeError):
        await consumer(message("e-1"))
    await consumer(message("e-1"))
    assert await counter(session_factory) == 1


@pytest.mark.slow
async def test_concurrent_duplicates_apply_each_message_once(
    counted: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Forty messages each delivered three times at once: the counter ends at forty."""
    consumer = IdempotentConsumer("count", add_to_counter, counted)
    deliveries = [message(f"e-{n}", f"b-{n}-{copy}") for n in range(40) for copy in range(3)]
    semaphore = asyncio.Semaphore(12)

    async def deliver(incoming: IncomingMessage) -> None:
        async with semaphore:
            await consumer(incoming)

    await asyncio.gather(*(deliver(incoming) for incoming in deliveries))
    assert await counter(session_factory) == 40
    async with session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(inbox))).scalar_one() == 40


async def test_the_handler_runs_in_the_messages_context(counted: Callable[[], AppUnitOfWork]) -> None:
    """Correlation from the attribute, causation = event id, principal from the attribute or the declared one."""
    seen: list[tuple[str | None, str | None, str | None]] = []

    async def note(incoming: IncomingMessage, uow: AppUnitOfWork) -> None:
        principal = current_principal()
        seen.append((current_correlation_id(), current_causation_id(), principal.id if principal else None))

    service = Principal(id="allocation-service")
    consumer = IdempotentConsumer("note", note, counted, principal=service)
    alice = Principal(id="alice").model_dump_json()
    await consumer(message("e-1", correlation_id="c-1", principal=alice))
    await consumer(message("e-2", correlation_id="c-2"))
    assert seen == [("c-1", "e-1", "alice"), ("c-2", "e-2", "allocation-service")]


def test_overlong_broker_ids_are_hashed_into_the_key() -> None:
    """A key longer than the column is replaced by its SHA-256, so it still fits and stays unique."""
    long = "x" * 500
    assert message_key(message(None, long)).startswith("sha256:")
    assert message_key(message("e-1", long)) == "e-1"


async def test_old_inbox_rows_are_purged(
    counted: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Rows older than the inbox retention go; newer ones stay."""
    consumer = IdempotentConsumer("count", add_to_counter, counted)
    await consumer(message("e-1"))
    settings = OutboxSettings(inbox_retention=3600)
    assert await purge(session_factory, settings) == (0, 0)
    assert await purge(session_factory, settings, now=utcnow() + timedelta(hours=2)) == (0, 1)
