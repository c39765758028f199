"""Exactly-once commands on the in-memory twin: the same recognition as the SQL record, without a database."""

from __future__ import annotations

import pytest

from keel import CommandAlreadyHandledError, ConcurrencyError, DatabaseUnavailableError, MessageBus
from keel.domain.messages import DomainEvent
from keel.service_layer import RetryPolicy
from keel.testing import InMemoryProcessedCommands, InMemoryStore
from tests.unit.bus_fakes import Bump
from tests.unit.twin_fakes import FakeUnitOfWork, seeded, value_of

RETRY_UNAVAILABLE = RetryPolicy(
    max_attempts=3, initial_backoff=0, max_backoff=0, jitter=0, retry_on=(ConcurrencyError, DatabaseUnavailableError)
)


async def bump(cmd: Bump, uow: FakeUnitOfWork) -> int:
    async with uow:
        item = await uow.items.get(cmd.key)
        item.bump(cmd.by)
        await uow.commit()
    return item.value


class LosesFirstAcknowledgement(FakeUnitOfWork):
    lost: list[bool]

    async def _commit(self, events: list[DomainEvent]) -> None:
        await super()._commit(events)
        if not self.lost:
            self.lost.append(True)
            self.committed = False  # the store has the work, but this unit of work never heard back
            raise DatabaseUnavailableError("the database connection was lost")


def bus_for(store: InMemoryStore, uow_class: type[FakeUnitOfWork] = FakeUnitOfWork) -> MessageBus:
    recorder = InMemoryProcessedCommands()
    return MessageBus(
        lambda: uow_class(store, participants=[recorder]),
        command_handlers={Bump: bump},
        command_retry=RETRY_UNAVAILABLE,
    )


async def test_the_twin_refuses_a_repeated_idempotency_key() -> None:
    """A second command with the same key raises CommandAlreadyHandledError and changes nothing."""
    store = await seeded("a")
    bus = bus_for(store)
    assert await bus.handle(Bump(key="a"), idempotency_key="k1") == 1
    with pytest.raises(CommandAlreadyHandledError) as caught:
        await bus.handle(Bump(key="a"), idempotency_key="k1")
    assert caught.value.details["command_type"] == "Bump"
    assert await bus.handle(Bump(key="a"), idempotency_key="k2") == 2
    assert await value_of(store, "a") == 2


async def test_the_twin_recognises_a_retry_after_a_lost_acknowledgement() -> None:
    """The first attempt committed then reported the connection lost: the retry is refused, the bump applied once."""
    store = await seeded("a")

    class Lossy(LosesFirstAcknowledgement):
        lost = []

    bus = bus_for(store, Lossy)
    with pytest.raises(CommandAlreadyHandledError):
        await bus.handle(Bump(key="a"))
    assert bus.stats.command_retries == 1
    assert await value_of(store, "a") == 1


async def test_a_failed_commit_on_the_twin_records_nothing() -> None:
    """A commit that fails after the check (a stale version) leaves the id free for the retry."""
    store = await seeded("a")
    recorder = InMemoryProcessedCommands()
    conflicts = [True]

    async def racing(cmd: Bump, uow: FakeUnitOfWork) -> int:
        async with uow:
            item = await uow.items.get(cmd.key)
            item.bump(cmd.by)
            if conflicts:
                conflicts.pop()
                async with FakeUnitOfWork(store) as other:  # a concurrent writer commits first
                    (await other.items.get(cmd.key)).bump(10)
                    await other.commit()
            await uow.commit()
        return item.value

    bus = MessageBus(
        lambda: FakeUnitOfWork(store, participants=[recorder]),
        command_handlers={Bump: racing},
        command_retry=RETRY_UNAVAILABLE,
    )
    assert await bus.handle(Bump(key="a"), idempotency_key="k") == 11
    assert bus.stats.command_retries == 1
    assert list(recorder.records(store)) == ["k"]
