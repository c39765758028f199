"""Command retries: which errors, how many attempts, the backoff, a fresh unit of work each time."""

from __future__ import annotations

import logging
import re

import pytest

from keel import ConcurrencyError, DatabaseUnavailableError, MessageBus, NotFoundError
from keel.service_layer import RetryPolicy
from tests.unit.bus_fakes import Bump, Bumped, FakeStore, FakeUnitOfWork, seeded, value_of


def make(
    store: FakeStore, policy: RetryPolicy, failures: list[BaseException]
) -> tuple[MessageBus, list[FakeUnitOfWork]]:
    """A bus whose Bump handler raises the given errors first, then succeeds."""
    used: list[FakeUnitOfWork] = []
    remaining = list(failures)

    async def handler(cmd: Bump, uow: FakeUnitOfWork) -> int:
        used.append(uow)
        async with uow:
            item = await uow.items.get(cmd.key)
            item.bump(1)
            if remaining:
                raise remaining.pop(0)
            await uow.commit()
        return item.value

    return MessageBus(lambda: FakeUnitOfWork(store), command_handlers={Bump: handler}, command_retry=policy), used


@pytest.fixture
async def store() -> FakeStore:
    return await seeded("a")


FAST = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.002, jitter=0.001)


async def test_a_concurrency_conflict_is_retried_with_a_fresh_unit_of_work(store: FakeStore) -> None:
    """The default policy retries ConcurrencyError; each attempt has its own unit of work."""
    bus, used = make(store, FAST, [ConcurrencyError("lost the race"), ConcurrencyError("lost again")])
    assert await bus.handle(Bump(key="a")) == 1  # the failed attempts were rolled back
    assert len(used) == 3
    assert len({id(u) for u in used}) == 3
    assert bus.stats.command_retries == 2
    assert bus.stats.commands_handled == 1


async def test_retries_stop_at_the_attempt_limit_and_the_last_error_propagates(store: FakeStore) -> None:
    """After max_attempts the caller gets the ConcurrencyError itself."""
    bus, used = make(store, FAST, [ConcurrencyError(f"conflict {n}") for n in range(10)])
    with pytest.raises(ConcurrencyError, match="conflict 3"):
        await bus.handle(Bump(key="a"))
    assert len(used) == 4
    assert bus.stats.command_retries == 3
    assert bus.stats.commands_failed == 1


async def test_errors_outside_the_policy_are_not_retried(store: FakeStore) -> None:
    """A business error fails at once."""
    bus, used = make(store, FAST, [NotFoundError(entity="Item", id="a")])
    with pytest.raises(NotFoundError):
        await bus.handle(Bump(key="a"))
    assert len(used) == 1


async def test_the_policy_can_retry_dropped_connections(store: FakeStore) -> None:
    """retry_on is injectable: the container adds DatabaseUnavailableError."""
    policy = RetryPolicy(
        max_attempts=3, initial_backoff=0, max_backoff=0, jitter=0,
        retry_on=(ConcurrencyError, DatabaseUnavailableError),
    )  # fmt: skip
    bus, used = make(store, policy, [DatabaseUnavailableError("connection reset")])
    assert await bus.handle(Bump(key="a")) == 1
    assert len(used) == 2
    without, _ = make(store, FAST, [DatabaseUnavailableError("connection reset")])
    with pytest.raises(DatabaseUnavailableError):
        await without.handle(Bump(key="a"))


async def test_a_failed_attempts_events_are_never_dispatched(store: FakeStore) -> None:
    """Only the attempt that committed releases events."""
    handled: list[int] = []

    async def on_bumped(event: Bumped) -> None:
        handled.append(event.value)

    used: list[FakeUnitOfWork] = []
    failures = [ConcurrencyError("conflict")]

    async def handler(cmd: Bump, uow: FakeUnitOfWork) -> None:
        used.append(uow)
        async with uow:
            (await uow.items.get(cmd.key)).bump(1)
            if failures:
                raise failures.pop()
            await uow.commit()

    bus = MessageBus(
        lambda: FakeUnitOfWork(store),
        command_handlers={Bump: handler},
        event_handlers={Bumped: [on_bumped]},
        command_retry=FAST,
    )
    await bus.handle(Bump(key="a"))
    assert handled == [1]


async def test_an_attempt_that_already_committed_is_not_run_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that committed once, then conflicts, re-raises: a retry would repeat the committed work."""
    store = await seeded("audit", "hot")
    handled: list[str] = []
    calls = 0

    async def on_bumped(event: Bumped) -> None:
        handled.append(event.key)

    async def handler(cmd: Bump, uow: FakeUnitOfWork) -> None:
        nonlocal calls
        calls += 1
        async with uow:
            (await uow.items.get("audit")).bump(1)
            await uow.commit()
        async with uow:
            (await uow.items.get(cmd.key)).bump(1)
            raise ConcurrencyError("lost the race")

    bus = MessageBus(
        lambda: FakeUnitOfWork(store),
        command_handlers={Bump: handler},
        event_handlers={Bumped: [on_bumped]},
        command_retry=FAST,
    )
    with caplog.at_level(logging.WARNING, logger="keel.messagebus"), pytest.raises(ConcurrencyError):
        await bus.handle(Bump(key="hot"))
    assert calls == 1
    assert (await value_of(store, "audit"), await value_of(store, "hot")) == (1, 0)
    assert handled == ["audit"]  # the committed part's events are still dispatched, once
    assert bus.stats.command_retries == 0
    assert "after its unit of work committed; not retried" in caplog.text


async def test_an_event_handler_that_already_committed_is_not_run_again() -> None:
    """Event handler retries follow the same rule: counted as one failure, run once."""
    store = await seeded("a", "audit")
    calls = 0

    async def bump(cmd: Bump, uow: FakeUnitOfWork) -> None:
        async with uow:
            (await uow.items.get(cmd.key)).bump(1)
            await uow.commit()

    async def audit(event: Bumped, uow: FakeUnitOfWork) -> None:
        nonlocal calls
        calls += 1
        if event.key != "a":
            return
        async with uow:
            (await uow.items.get("audit")).bump(1)
            await uow.commit()
        raise ConcurrencyError("second step lost the race")

    bus = MessageBus(
        lambda: FakeUnitOfWork(store),
        command_handlers={Bump: bump},
        event_handlers={Bumped: [audit]},
        event_retry=FAST,
    )
    await bus.handle(Bump(key="a"))
    assert calls == 2  # the event of "a", then the audit's own event (which does nothing)
    assert await value_of(store, "audit") == 1
    assert bus.stats.event_handler_retries == 0
    assert bus.stats.event_handler_failures == 1


async def test_committed_turns_true_with_the_first_commit_and_stays(store: FakeStore) -> None:
    """AbstractUnitOfWork.committed: False when new and after a rollback, True for good once a block committed."""
    uow = FakeUnitOfWork(store)
    assert not uow.committed
    async with uow:
        await uow.rollback()
    assert not uow.committed
    async with uow:
        await uow.commit()
    async with uow:
        pass
    assert uow.committed


async def test_each_retry_is_logged_with_its_wait_and_attempt(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Waits grow exponentially from initial_backoff, capped by max_backoff, plus at most `jitter`."""
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.001, max_backoff=0.004, jitter=0.0005)
    bus, _ = make(store, policy, [ConcurrencyError("c")] * 4)
    with caplog.at_level(logging.WARNING, logger="keel.messagebus"):
        await bus.handle(Bump(key="a"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    waits = [float(re.search(r"retrying in ([\d.]+)s", line).group(1)) for line in lines]  # type: ignore[union-attr]
    for wait, base in zip(waits, [0.001, 0.002, 0.004, 0.004], strict=True):
        assert base <= wait <= base + 0.0005 + 0.0005  # the log rounds to milliseconds
    assert [r.keel_attempt for r in caplog.records] == [2, 3, 4, 5]  # type: ignore[attr-defined]
    assert "attempt 2 of 5" in lines[0]
    assert "[concurrency_conflict] c" in lines[0]


def test_a_policy_refuses_nonsense() -> None:
    """Zero attempts or negative waits are errors."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy(jitter=-1)
    assert RetryPolicy.never().max_attempts == 1
    assert RetryPolicy().retries(ConcurrencyError())
    assert not RetryPolicy().retries(NotFoundError())
