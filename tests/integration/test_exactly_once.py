"""Exactly-once commands: a retry or repeat of a command that already committed is recognised, not applied again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel import (
    Command,
    CommandAlreadyHandledError,
    ConcurrencyError,
    ConfigurationError,
    DatabaseUnavailableError,
    DomainEvent,
    MessageBus,
    ValidationError,
)
from keel.config import DatabaseSettings
from keel.domain.messages import DomainEvent as Event
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.database.tables import processed_commands
from keel.infrastructure.processed_commands import RecordProcessedCommands
from keel.orm import Base
from keel.service_layer import RetryPolicy, current_command
from tests.models import AppUnitOfWork, Counter
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

#: The container's policy, without waits: a dropped connection is retried.
RETRY_UNAVAILABLE = RetryPolicy(
    max_attempts=5, initial_backoff=0, max_backoff=0, jitter=0, retry_on=(ConcurrencyError, DatabaseUnavailableError)
)


class Bump(Command):
    counter_id: int


class Bumped(DomainEvent):
    counter_id: int


class LosesFirstAcknowledgement(AppUnitOfWork):
    """Its first commit reaches the database, then reports the connection lost (a lost COMMIT reply)."""

    lost: list[bool]

    async def _commit(self, events: list[Event]) -> None:
        await super()._commit(events)
        if not self.lost:
            self.lost.append(True)
            raise DatabaseUnavailableError("the database connection was lost")


async def bump(cmd: Bump, uow: AppUnitOfWork) -> int:
    async with uow:
        counter = await uow.counters.get(cmd.counter_id)
        counter.value += 1
        await uow.commit()
    return counter.value


async def seed(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with AppUnitOfWork(session_factory) as uow:
        uow.counters.add(Counter(id=1, value=0))
        await uow.commit()


async def counter_value(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with AppUnitOfWork(session_factory) as uow:
        return (await uow.counters.get(1)).value


async def records(session_factory: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with session_factory() as session:
        rows = await session.execute(select(processed_commands.c.command_id, processed_commands.c.command_type))
        return [(row.command_id, row.command_type) for row in rows]


def recording_bus(
    session_factory: async_sessionmaker[AsyncSession], uow_class: type[AppUnitOfWork] = AppUnitOfWork, **kwargs: Any
) -> MessageBus:
    recorder = RecordProcessedCommands()
    return MessageBus(
        lambda: uow_class(session_factory, participants=[recorder]),
        command_handlers={Bump: bump},
        command_retry=RETRY_UNAVAILABLE,
        **kwargs,
    )


async def test_a_retry_after_a_lost_acknowledgement_is_not_applied_again(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The first attempt committed but saw an error: the retry finds its record, rolls back and says so."""
    await seed(session_factory)

    class Lossy(LosesFirstAcknowledgement):
        lost = []

    bus = recording_bus(session_factory, Lossy)
    with pytest.raises(CommandAlreadyHandledError) as caught:
        await bus.handle(Bump(counter_id=1))
    assert await counter_value(session_factory) == 1
    assert bus.stats.command_retries == 1
    assert bus.stats.commands_already_handled == 1
    assert bus.stats.commands_failed == 0
    assert caught.value.code == "command_already_handled"
    assert caught.value.details["command_type"] == "Bump"
    assert "committed_at" in caught.value.details
    assert [kind for _, kind in await records(session_factory)] == ["Bump"]


async def test_without_the_record_a_lost_acknowledgement_applies_the_command_twice(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The hazard the record closes: a unit of work without the participant repeats the committed work."""
    await seed(session_factory)

    class Lossy(LosesFirstAcknowledgement):
        lost = []

    bus = MessageBus(lambda: Lossy(session_factory), command_handlers={Bump: bump}, command_retry=RETRY_UNAVAILABLE)
    assert await bus.handle(Bump(counter_id=1)) == 2
    assert await counter_value(session_factory) == 2


async def test_the_same_idempotency_key_applies_a_command_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A client repeating a request with its idempotency key gets CommandAlreadyHandledError, not a second effect."""
    await seed(session_factory)
    bus = recording_bus(session_factory)
    assert await bus.handle(Bump(counter_id=1), idempotency_key="req-42") == 1
    with pytest.raises(CommandAlreadyHandledError) as caught:
        await bus.handle(Bump(counter_id=1), idempotency_key="req-42")
    assert caught.value.details["command_id"] == "req-42"
    assert await counter_value(session_factory) == 1
    assert await records(session_factory) == [("req-42", "Bump")]


async def test_commands_without_a_key_are_each_applied(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Every `handle` call without a key is a new command with its own id."""
    await seed(session_factory)
    bus = recording_bus(session_factory)
    assert [await bus.handle(Bump(counter_id=1)) for _ in range(3)] == [1, 2, 3]
    assert len({command_id for command_id, _ in await records(session_factory)}) == 3


async def test_an_attempt_that_rolled_back_does_not_block_its_retry(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A conflict before the commit leaves no record, so the retry applies the command (once)."""
    await seed(session_factory)
    conflicts = [ConcurrencyError("another writer won")]

    async def flaky_bump(cmd: Bump, uow: AppUnitOfWork) -> int:
        async with uow:
            counter = await uow.counters.get(cmd.counter_id)
            counter.value += 1
            if conflicts:
                raise conflicts.pop()
            await uow.commit()
        return counter.value

    recorder = RecordProcessedCommands()
    bus = MessageBus(
        lambda: AppUnitOfWork(session_factory, participants=[recorder]),
        command_handlers={Bump: flaky_bump},
        command_retry=RETRY_UNAVAILABLE,
    )
    assert await bus.handle(Bump(counter_id=1), idempotency_key="k") == 1
    assert bus.stats.command_retries == 1
    assert await records(session_factory) == [("k", "Bump")]


async def test_a_handler_that_commits_twice_records_the_command_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Only the handling's first committed transaction records the id; the second is not taken for a repeat."""
    await seed(session_factory)

    async def bump_twice(cmd: Bump, uow: AppUnitOfWork) -> int:
        for _ in range(2):
            async with uow:
                counter = await uow.counters.get(cmd.counter_id)
                counter.value += 1
                await uow.commit()
        return counter.value

    recorder = RecordProcessedCommands()
    bus = MessageBus(
        lambda: AppUnitOfWork(session_factory, participants=[recorder]), command_handlers={Bump: bump_twice}
    )
    assert await bus.handle(Bump(counter_id=1)) == 2
    assert len(await records(session_factory)) == 1


async def test_event_handlers_commit_without_recording_the_command(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The command's id is cleared while its events are handled: their commits are not mistaken for repeats."""
    await seed(session_factory)
    seen: list[object] = []

    async def bump_and_tell(cmd: Bump, uow: AppUnitOfWork) -> None:
        async with uow:
            counter = await uow.counters.get(cmd.counter_id)
            counter.value += 1
            counter.record(Bumped(counter_id=cmd.counter_id))
            await uow.commit()

    async def on_bumped(event: Bumped, uow: AppUnitOfWork) -> None:
        seen.append(current_command())
        async with uow:
            (await uow.counters.get(event.counter_id)).value += 10
            await uow.commit()

    recorder = RecordProcessedCommands()
    bus = MessageBus(
        lambda: AppUnitOfWork(session_factory, participants=[recorder]),
        command_handlers={Bump: bump_and_tell},
        event_handlers={Bumped: [on_bumped]},
    )
    await bus.handle(Bump(counter_id=1))
    assert seen == [None]
    assert bus.stats.event_handler_failures == 0
    assert await counter_value(session_factory) == 11
    assert len(await records(session_factory)) == 1


async def test_concurrent_requests_with_one_key_apply_the_command_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Two tasks racing with the same key on their own connections: one applies it, the other is told it was done."""
    await seed(session_factory)
    bus = recording_bus(session_factory)
    results = await asyncio.gather(
        *(bus.handle(Bump(counter_id=1), idempotency_key="race") for _ in range(2)), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["CommandAlreadyHandledError", "int"]
    assert await counter_value(session_factory) == 1


async def test_an_unusable_idempotency_key_is_a_validation_error(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Blank or oversized keys are refused before any handler runs; events take no key."""
    bus = recording_bus(session_factory)
    for key in ("", "   ", "k" * 201):
        with pytest.raises(ValidationError):
            await bus.handle(Bump(counter_id=1), idempotency_key=key)
    with pytest.raises(TypeError, match="commands"):
        await bus.handle(Bumped(counter_id=1), idempotency_key="k")


# --- a database without keel's tables ---------------------------------------------------------


@pytest.fixture
def unmigrated_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with the application's tables but not keel's (built with Base.metadata.create_all)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'app-only.db'}"
        return
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    yield url
    drop_postgres_database(name)


@pytest.fixture
async def app_only_engine(unmigrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=unmigrated_url))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_a_missing_record_table_is_a_configuration_error_naming_the_migrations(
    app_only_engine: AsyncEngine,
) -> None:
    """Without keel_processed_commands the command fails at once, telling the user to run keel's migrations."""
    factory = create_session_factory(app_only_engine)
    await seed(factory)
    bus = recording_bus(factory)
    with pytest.raises(ConfigurationError, match=r"keel@head") as caught:
        await bus.handle(Bump(counter_id=1))
    assert caught.value.details["table"] == "keel_processed_commands"
    assert bus.stats.command_retries == 0
    assert await counter_value(factory) == 0
    async with factory() as session:
        assert (await session.execute(select(func.count()).select_from(Counter))).scalar_one() == 1


async def test_a_cancelled_command_leaves_no_command_context_behind(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Cancelling a handler restores the caller's context: later work in the task is not taken for the command."""
    started = asyncio.Event()

    async def stuck(cmd: Bump, uow: AppUnitOfWork) -> None:
        started.set()
        await asyncio.Event().wait()

    bus = MessageBus(lambda: AppUnitOfWork(session_factory), command_handlers={Bump: stuck})

    async def caller() -> object:
        with contextlib.suppress(asyncio.CancelledError):
            await bus.handle(Bump(counter_id=1))
        return current_command()

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    assert await task is None
