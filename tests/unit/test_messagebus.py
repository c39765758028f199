"""MessageBus: dispatch, injection, events after commit, isolation, concurrency."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from keel import BusConfigurationError, ConcurrencyError, MessageBus, ValidationError
from keel.service_layer import RetryPolicy
from tests.unit.bus_fakes import Bump, Bumped, Fail, FakeStore, FakeUnitOfWork, Item, Noticed, seeded, value_of

NO_WAIT = RetryPolicy(max_attempts=3, initial_backoff=0, max_backoff=0, jitter=0)


@pytest.fixture
async def store() -> FakeStore:
    return await seeded("a")


def make_bus(store: FakeStore, **kwargs: Any) -> MessageBus:
    kwargs.setdefault("command_retry", NO_WAIT)
    kwargs.setdefault("event_retry", NO_WAIT)
    return MessageBus(lambda: FakeUnitOfWork(store), **kwargs)


async def bump(cmd: Bump, uow: FakeUnitOfWork) -> int:
    async with uow:
        item = await uow.items.get(cmd.key)
        item.bump(cmd.by)
        await uow.commit()
    return item.value


# --- commands ----------------------------------------------------------------------


async def test_handle_returns_the_command_handlers_result(store: FakeStore) -> None:
    """await bus.handle(command) is what the command's handler returned."""
    bus = make_bus(store, command_handlers={Bump: bump})
    assert await bus.handle(Bump(key="a", by=5)) == 5
    assert await value_of(store, "a") == 5
    assert bus.stats.commands_handled == 1


async def test_a_command_handlers_error_propagates_and_is_counted(store: FakeStore) -> None:
    """The caller sees the command's own error; the failure is counted."""

    async def fail(cmd: Fail) -> None:
        raise ValidationError(cmd.reason)

    bus = make_bus(store, command_handlers={Fail: fail})
    with pytest.raises(ValidationError, match="nope"):
        await bus.handle(Fail(reason="nope"))
    assert bus.stats.commands_failed == 1
    assert bus.stats.command_retries == 0


async def test_each_message_gets_a_fresh_unit_of_work(store: FakeStore) -> None:
    """The `uow` parameter is a new unit of work from the factory for every message."""
    seen: list[FakeUnitOfWork] = []

    async def record(cmd: Bump, uow: FakeUnitOfWork) -> None:
        seen.append(uow)

    bus = make_bus(store, command_handlers={Bump: record})
    await bus.handle(Bump(key="a"))
    await bus.handle(Bump(key="a"))
    assert len(seen) == 2
    assert seen[0] is not seen[1]


async def test_dependencies_are_injected_by_parameter_name(store: FakeStore) -> None:
    """Other parameters come from `dependencies` by name; defaults may stay unfilled."""
    calls: list[tuple[str, str, str]] = []

    async def handler(cmd: Bump, clock: str, *, greeting: str, suffix: str = "!") -> None:
        calls.append((clock, greeting, suffix))

    bus = make_bus(store, command_handlers={Bump: handler}, dependencies={"clock": "12:00", "greeting": "hi"})
    await bus.handle(Bump(key="a"))
    assert calls == [("12:00", "hi", "!")]


async def test_a_sync_handler_works_too(store: FakeStore) -> None:
    """Plain functions are called without awaiting."""
    bus = make_bus(store, command_handlers={Bump: lambda cmd: cmd.by * 2})
    assert await bus.handle(Bump(key="a", by=21)) == 42


async def test_a_command_without_a_handler_fails_when_handled(store: FakeStore) -> None:
    """An unregistered command is a BusConfigurationError naming it."""
    bus = make_bus(store)
    with pytest.raises(BusConfigurationError, match="no handler for command Bump"):
        await bus.handle(Bump(key="a"))


async def test_handle_refuses_what_is_not_a_message(store: FakeStore) -> None:
    """Only commands and events can be handled."""
    bus = make_bus(store)
    with pytest.raises(TypeError, match="Command or a DomainEvent"):
        await bus.handle("Bump")  # type: ignore[arg-type]


async def test_a_handler_for_a_base_command_handles_its_subclasses(store: FakeStore) -> None:
    """Dispatch follows the MRO when the exact type has no handler."""

    class BumpTwice(Bump):
        pass

    bus = make_bus(store, command_handlers={Bump: lambda cmd: type(cmd).__name__})
    assert await bus.handle(BumpTwice(key="a")) == "BumpTwice"
    assert bus.handles(BumpTwice)


# --- events after commit -------------------------------------------------------------


async def test_events_are_handled_after_the_commit_in_order(store: FakeStore) -> None:
    """Recorded events reach their handlers once the work is committed, first recorded first handled."""
    log: list[str] = []

    async def bump_twice(cmd: Bump, uow: FakeUnitOfWork) -> None:
        async with uow:
            item = await uow.items.get(cmd.key)
            item.bump(1)
            item.bump(1)
            log.append(f"before commit: stored {await value_of(store, cmd.key)}")
            await uow.commit()

    async def on_bumped(event: Bumped) -> None:
        log.append(f"bumped to {event.value}, stored {await value_of(store, event.key)}")

    bus = make_bus(store, command_handlers={Bump: bump_twice}, event_handlers={Bumped: [on_bumped]})
    await bus.handle(Bump(key="a"))
    assert log == ["before commit: stored 0", "bumped to 1, stored 2", "bumped to 2, stored 2"]
    assert bus.stats.events_handled == 2


async def test_events_raised_by_event_handlers_join_the_same_queue(store: FakeStore) -> None:
    """A cascade runs breadth-first within one handle() call."""
    log: list[str] = []

    async def on_bumped(event: Bumped, uow: FakeUnitOfWork) -> None:
        log.append(f"bumped {event.key}={event.value}")
        if event.key == "a":
            async with uow:
                uow.items.add(Item(key="b", value=0)).bump(10)
                await uow.commit()

    async def also_on_bumped(event: Bumped) -> None:
        log.append(f"also {event.key}")

    bus = make_bus(store, command_handlers={Bump: bump}, event_handlers={Bumped: [on_bumped, also_on_bumped]})
    await bus.handle(Bump(key="a"))
    assert log == ["bumped a=1", "also a", "bumped b=10", "also b"]


async def test_events_of_rolled_back_work_are_never_dispatched(store: FakeStore) -> None:
    """Leaving the unit of work without commit, or by an error, discards its events."""
    handled: list[Bumped] = []

    async def forgetful(cmd: Bump, uow: FakeUnitOfWork) -> None:
        async with uow:
            (await uow.items.get(cmd.key)).bump(1)
        async with uow:
            (await uow.items.get(cmd.key)).bump(1)
            raise ValidationError("changed my mind")

    async def on_bumped(event: Bumped) -> None:
        handled.append(event)

    bus = make_bus(store, command_handlers={Bump: forgetful}, event_handlers={Bumped: [on_bumped]})
    with pytest.raises(ValidationError):
        await bus.handle(Bump(key="a"))
    assert handled == []
    assert await value_of(store, "a") == 0


async def test_committed_events_are_handled_even_if_the_command_then_fails(store: FakeStore) -> None:
    """Work that did commit had effects: its events are dispatched before the error propagates."""
    handled: list[int] = []

    async def commit_then_fail(cmd: Bump, uow: FakeUnitOfWork) -> None:
        async with uow:
            (await uow.items.get(cmd.key)).bump(1)
            await uow.commit()
        raise ValidationError("late failure")

    async def on_bumped(event: Bumped) -> None:
        handled.append(event.value)

    bus = make_bus(store, command_handlers={Bump: commit_then_fail}, event_handlers={Bumped: [on_bumped]})
    with pytest.raises(ValidationError, match="late failure"):
        await bus.handle(Bump(key="a"))
    assert handled == [1]


async def test_handling_an_event_directly_runs_its_handlers(store: FakeStore) -> None:
    """bus.handle(event) dispatches to every handler and returns None."""
    handled: list[str] = []

    async def first(event: Noticed) -> None:
        handled.append("first " + event.what)

    async def second(event: Noticed) -> None:
        handled.append("second " + event.what)

    bus = make_bus(store, event_handlers={Noticed: [first, second]})
    assert await bus.handle(Noticed(what="x")) is None
    assert handled == ["first x", "second x"]


async def test_an_event_without_handlers_is_fine(store: FakeStore) -> None:
    """Events may have no handler at all."""
    bus = make_bus(store, command_handlers={Bump: bump})
    assert await bus.handle(Bump(key="a")) == 1
    assert bus.stats.events_handled == 1


async def test_a_handler_for_a_base_event_receives_subclasses(store: FakeStore) -> None:
    """A handler registered for DomainEvent sees every event, after the specific ones."""
    from keel import DomainEvent

    handled: list[str] = []

    async def specific(event: Bumped) -> None:
        handled.append("specific")

    async def audit(event: DomainEvent) -> None:
        handled.append("audit " + event.message_type)

    bus = make_bus(store, command_handlers={Bump: bump}, event_handlers={Bumped: [specific], DomainEvent: [audit]})
    await bus.handle(Bump(key="a"))
    assert handled == ["specific", "audit Bumped"]


# --- isolation of event handlers -------------------------------------------------------


async def test_a_failing_event_handler_is_logged_counted_and_does_not_stop_the_others(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """One broken handler: the command's result stands, the other handlers run, the failure is visible."""
    handled: list[str] = []

    async def broken(event: Bumped) -> None:
        raise RuntimeError("mail server down")

    async def fine(event: Bumped) -> None:
        handled.append(event.key)

    bus = make_bus(
        store,
        command_handlers={Bump: bump},
        event_handlers={Bumped: [broken, fine]},
        event_retry=RetryPolicy.never(),
    )
    with caplog.at_level(logging.ERROR, logger="keel.messagebus"):
        assert await bus.handle(Bump(key="a")) == 1
    assert handled == ["a"]
    assert await value_of(store, "a") == 1
    assert bus.stats.event_handler_failures == 1
    name = f"{__name__}.test_a_failing_event_handler_is_logged_counted_and_does_not_stop_the_others.<locals>.broken"
    assert bus.stats.failures_by_handler == {name: 1}
    assert "mail server down" in caplog.text
    assert "broken failed on Bumped" in caplog.text


async def test_event_handlers_are_retried_per_their_policy(store: FakeStore) -> None:
    """A transient failure of an event handler is retried; the attempts are counted."""
    attempts: list[int] = []

    async def flaky(event: Bumped) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConcurrencyError("conflict")

    bus = make_bus(store, command_handlers={Bump: bump}, event_handlers={Bumped: [flaky]})
    await bus.handle(Bump(key="a"))
    assert len(attempts) == 3
    assert bus.stats.event_handler_retries == 2
    assert bus.stats.event_handler_failures == 0


# --- follow-up commands ------------------------------------------------------------------


async def test_a_bus_parameter_receives_the_bus_for_follow_up_commands(store: FakeStore) -> None:
    """Handlers send further commands through the injected `bus`."""

    async def on_bumped(event: Bumped, bus: MessageBus) -> None:
        if event.value < 3:
            await bus.handle(Bump(key=event.key))

    bus = make_bus(store, command_handlers={Bump: bump}, event_handlers={Bumped: [on_bumped]})
    await bus.handle(Bump(key="a"))
    assert await value_of(store, "a") == 3


# --- concurrency ---------------------------------------------------------------------------


async def test_one_bus_serves_concurrent_calls_with_separate_queues(store: FakeStore) -> None:
    """Two interleaved handle() calls each dispatch only their own events."""
    async with FakeUnitOfWork(store) as uow:
        uow.items.add(Item(key="b", value=0))
        await uow.commit()
    a_waiting, b_done = asyncio.Event(), asyncio.Event()
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def on_bumped(event: Bumped) -> None:
        seen[event.key].append(event.key)
        if event.key == "a":
            a_waiting.set()
            await b_done.wait()  # `a` is mid-dispatch while `b` runs its whole call

    bus = make_bus(store, command_handlers={Bump: bump}, event_handlers={Bumped: [on_bumped]})

    async def run_b() -> None:
        await a_waiting.wait()
        await bus.handle(Bump(key="b"))
        b_done.set()

    async with asyncio.timeout(5):
        await asyncio.gather(bus.handle(Bump(key="a")), run_b())
    assert seen == {"a": ["a"], "b": ["b"]}
