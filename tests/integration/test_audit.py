"""Automatic audit on SQLite and PostgreSQL: one keel_audit row per command handled, whatever its outcome."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import (
    AuthenticationError,
    AuthorizationError,
    Command,
    ConcurrencyError,
    ConfigurationError,
    MessageBus,
    NotFoundError,
    RetryPolicy,
)
from keel.config import DatabaseSettings
from keel.infrastructure.audit import RecordAudit, audit_middleware
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.database.tables import audit
from keel.infrastructure.processed_commands import RecordProcessedCommands
from keel.orm import Base
from keel.security import MASK, Principal, as_principal, authorize, correlate, requires
from keel.service_layer.context import current_correlation_id, message_context
from tests.models import AppUnitOfWork, Counter

ALICE = Principal(id="alice", permissions=frozenset({"bump"}))
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0, max_backoff=0, jitter=0, retry_on=(ConcurrencyError,))


class Bump(Command):
    counter_id: int
    by: int = 1
    token: SecretStr = SecretStr("t0ps3cret")
    note: str = Field("hush", json_schema_extra={"secret": True})


class Open(Command):
    counter_id: int


class Fail(Command):
    kind: str


class Twice(Command):
    counter_id: int


class NoUnitOfWork(Command):
    pass


@requires("bump")
async def bump(cmd: Bump, uow: AppUnitOfWork) -> str | None:
    async with uow:
        counter = await uow.counters.get(cmd.counter_id)
        counter.value += cmd.by
        await uow.commit()
    return current_correlation_id()


async def open_counter(cmd: Open, uow: AppUnitOfWork) -> None:
    async with uow:
        uow.counters.add(Counter(id=cmd.counter_id, value=0))
        await uow.commit()


async def fail(cmd: Fail, uow: AppUnitOfWork) -> None:
    if cmd.kind == "not_found":
        async with uow:
            await uow.counters.get(999)
    if cmd.kind == "after_commit":
        async with uow:
            counter = await uow.counters.get(1)
            counter.value += 1
            await uow.commit()
    raise RuntimeError("boom: a message that must never reach the audit table")


async def twice(cmd: Twice, uow: AppUnitOfWork) -> None:
    for _ in range(2):
        async with uow:
            counter = await uow.counters.get(cmd.counter_id)
            counter.value += 1
            await uow.commit()


async def no_uow(cmd: NoUnitOfWork) -> str:
    return "done"


def bus_for(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    audit_on: bool = True,
    extra: dict[type[Command], Callable[..., Any]] | None = None,
) -> MessageBus:
    def uow() -> AppUnitOfWork:
        return AppUnitOfWork(session_factory, participants=[RecordProcessedCommands(), RecordAudit()])

    handlers: dict[type[Command], Callable[..., Any]] = {
        Bump: bump,
        Open: open_counter,
        Fail: fail,
        Twice: twice,
        NoUnitOfWork: no_uow,
        **(extra or {}),
    }
    return MessageBus(
        uow,
        command_handlers=handlers,
        middleware=[correlate, audit_middleware(session_factory), authorize],
        command_retry=FAST_RETRY,
        audit=audit_on,
    )


async def audit_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with session_factory() as session:
        return list((await session.execute(select(audit).order_by(audit.c.occurred_at))).all())


async def counter_value(session_factory: async_sessionmaker[AsyncSession], counter_id: int = 1) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(Counter.value).where(Counter.id == counter_id))).scalar_one())


async def opened(session_factory: async_sessionmaker[AsyncSession]) -> MessageBus:
    bus = bus_for(session_factory)
    await bus.handle(Open(counter_id=1))
    return bus


async def test_a_command_that_succeeds_has_one_row_with_principal_correlation_and_redacted_payload(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Outcome succeeded, the principal's id, the correlation id in force and the secrets masked."""
    bus = await opened(session_factory)
    with as_principal(ALICE), message_context(correlation_id="corr-1"):
        assert await bus.handle(Bump(counter_id=1, by=2), idempotency_key="key-1") == "corr-1"
    rows = [row for row in await audit_rows(session_factory) if row.message_type == "Bump"]
    assert len(rows) == 1
    row = rows[0]
    assert (row.outcome, row.principal_id, row.correlation_id, row.command_id) == (
        "succeeded",
        "alice",
        "corr-1",
        "key-1",
    )
    assert row.error_code is None
    assert row.handler.endswith("test_audit.bump")
    assert row.payload == {"counter_id": 1, "by": 2, "token": MASK, "note": MASK}
    assert row.occurred_at.tzinfo is not None
    assert await counter_value(session_factory) == 2


async def test_a_command_outside_any_correlation_gets_one(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """With no message context active, the bus's correlate middleware starts one; the row carries it."""
    bus = await opened(session_factory)
    with as_principal(ALICE):
        correlation = await bus.handle(Bump(counter_id=1))
    assert correlation
    rows = await audit_rows(session_factory)
    assert [row.correlation_id for row in rows if row.message_type == "Bump"] == [correlation]


async def test_a_denied_command_changes_nothing_and_has_a_denied_row(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A principal without the permission is refused before the handler runs; the denial is recorded."""
    bus = await opened(session_factory)
    mallory = Principal(id="mallory", permissions=frozenset({"read"}))
    with as_principal(mallory), pytest.raises(AuthorizationError) as caught:
        await bus.handle(Bump(counter_id=1, by=5))
    assert type(caught.value) is AuthorizationError
    assert caught.value.details == {"required": ["bump"], "missing": ["bump"], "principal": "mallory"}
    assert await counter_value(session_factory) == 0
    [row] = [row for row in await audit_rows(session_factory) if row.message_type == "Bump"]
    assert (row.outcome, row.principal_id, row.error_code) == ("denied", "mallory", "authorization_denied")
    assert row.payload["token"] == MASK
    assert row.correlation_id


async def test_an_anonymous_caller_is_refused_as_unauthenticated(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """No principal at all: AuthenticationError (an AuthorizationError), recorded as denied."""
    bus = await opened(session_factory)
    with pytest.raises(AuthenticationError) as caught:
        await bus.handle(Bump(counter_id=1))
    assert caught.value.details["reason"] == "missing"
    assert await counter_value(session_factory) == 0
    [row] = [row for row in await audit_rows(session_factory) if row.message_type == "Bump"]
    assert (row.outcome, row.principal_id, row.error_code) == ("denied", None, "authentication_failed")


@pytest.mark.parametrize(("kind", "code"), [("not_found", "not_found"), ("plain", "internal_error")])
async def test_a_failed_command_has_a_failed_row_with_its_code_and_no_message(
    session_factory: async_sessionmaker[AsyncSession], kind: str, code: str
) -> None:
    """A keel error is recorded by its code; any other exception as internal_error, its text never stored."""
    bus = await opened(session_factory)
    with pytest.raises((NotFoundError, RuntimeError)):
        await bus.handle(Fail(kind=kind))
    [row] = [row for row in await audit_rows(session_factory) if row.message_type == "Fail"]
    assert (row.outcome, row.error_code) == ("failed", code)
    assert "boom" not in str(row._mapping)


async def test_a_handler_failing_after_its_commit_has_one_row_saying_failed(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The row committed with the work is updated to failed, not duplicated."""
    bus = await opened(session_factory)
    with pytest.raises(RuntimeError):
        await bus.handle(Fail(kind="after_commit"))
    assert await counter_value(session_factory) == 1
    rows = [row for row in await audit_rows(session_factory) if row.message_type == "Fail"]
    assert [(row.outcome, row.error_code) for row in rows] == [("failed", "internal_error")]


async def test_a_retried_command_has_one_row(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """The first attempt's row rolls back with its stale commit; only the committing attempt's remains."""
    attempts: list[int] = []

    class Racy(Command):
        counter_id: int

    async def racy(cmd: Racy, uow: AppUnitOfWork) -> None:
        attempts.append(1)
        async with uow:
            counter = await uow.counters.get(cmd.counter_id)
            if len(attempts) == 1:  # someone else changes the row first
                async with session_factory.begin() as other:
                    await other.execute(
                        update(Counter).where(Counter.id == cmd.counter_id).values(version=Counter.version + 1)
                    )
            counter.value += 1
            await uow.commit()

    bus = bus_for(session_factory, extra={Racy: racy})
    await bus.handle(Open(counter_id=1))
    await bus.handle(Racy(counter_id=1))
    assert len(attempts) == 2
    rows = [row for row in await audit_rows(session_factory) if row.message_type == "Racy"]
    assert [row.outcome for row in rows] == ["succeeded"]


async def test_two_commits_in_one_handler_write_one_row(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """The second commit finds the entry written and adds nothing."""
    bus = await opened(session_factory)
    await bus.handle(Twice(counter_id=1))
    assert await counter_value(session_factory) == 2
    rows = [row for row in await audit_rows(session_factory) if row.message_type == "Twice"]
    assert [row.outcome for row in rows] == ["succeeded"]


async def test_a_handler_without_a_unit_of_work_still_gets_a_row(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """What no unit of work wrote, the middleware writes in its own transaction."""
    bus = bus_for(session_factory)
    assert await bus.handle(NoUnitOfWork()) == "done"
    rows = await audit_rows(session_factory)
    assert [(row.message_type, row.outcome) for row in rows] == [("NoUnitOfWork", "succeeded")]


async def test_audit_off_writes_nothing(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """MessageBus(..., audit=False): successes, failures and denials leave no row; requires still holds."""
    bus = bus_for(session_factory, audit_on=False)
    await bus.handle(Open(counter_id=1))
    with as_principal(ALICE):
        await bus.handle(Bump(counter_id=1))
    with pytest.raises(AuthenticationError):
        await bus.handle(Bump(counter_id=1))
    with pytest.raises(RuntimeError):
        await bus.handle(Fail(kind="plain"))
    assert await audit_rows(session_factory) == []
    assert await counter_value(session_factory) == 1


async def test_events_are_not_audited(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Only commands get rows: an event's handlers run without an audit entry."""
    bus = bus_for(session_factory)
    await bus.handle(Open(counter_id=1))
    rows = await audit_rows(session_factory)
    assert [row.message_type for row in rows] == ["Open"]


async def test_a_missing_audit_table_is_a_configuration_error_before_any_handler_runs(tmp_path: Path) -> None:
    """A database without keel's migrations: ConfigurationError naming keel_audit and the fix; nothing runs."""
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        session_factory = create_session_factory(engine)
        bus = bus_for(session_factory)
        for _ in range(2):  # refused every time, not only once
            with pytest.raises(ConfigurationError) as caught:
                await bus.handle(Open(counter_id=1))
            assert "keel_audit" in caught.value.message
            assert "alembic upgrade keel@head" in caught.value.message
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM core_counters"))).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_an_overlong_correlation_id_is_cut_to_its_column_not_failing_the_command(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A client's 1,000-character correlation header still lets the command commit with its row."""
    bus = bus_for(session_factory)
    with message_context(correlation_id="c" * 1000):
        await bus.handle(Open(counter_id=1))
    [row] = await audit_rows(session_factory)
    assert (row.outcome, row.correlation_id) == ("succeeded", "c" * 200)
