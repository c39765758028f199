"""MessageBus middleware: a chain around every handler call, for security and telemetry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from keel import AuthorizationError, BusConfigurationError, ConcurrencyError, MessageBus
from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.service_layer import CallNext, HandlerCall, Middleware, RetryPolicy, current_command
from tests.unit.bus_fakes import Bump, Bumped, FakeStore, FakeUnitOfWork, Noticed, seeded, value_of

NO_WAIT = RetryPolicy(max_attempts=3, initial_backoff=0, max_backoff=0, jitter=0)


async def bump(cmd: Bump, uow: FakeUnitOfWork) -> int:
    async with uow:
        item = await uow.items.get(cmd.key)
        item.bump(cmd.by)
        await uow.commit()
    return item.value


def tracer(name: str, log: list[str]) -> Middleware:
    async def trace(call: HandlerCall, call_next: CallNext) -> Any:
        log.append(f"{name}>{call.kind}:{type(call.message).__name__}:{call.handler.rsplit('.', 1)[-1]}")
        try:
            return await call_next()
        finally:
            log.append(f"{name}<")

    return trace


@pytest.fixture
async def store() -> FakeStore:
    return await seeded("a")


def make_bus(store: FakeStore, middleware: list[Middleware], **kwargs: Any) -> MessageBus:
    kwargs.setdefault("command_retry", NO_WAIT)
    kwargs.setdefault("event_retry", NO_WAIT)
    return MessageBus(lambda: FakeUnitOfWork(store), middleware=middleware, **kwargs)


async def test_middleware_wraps_each_handler_call_the_first_outermost(store: FakeStore) -> None:
    """Commands and each event handler pass through the chain in list order; the result comes back through it."""
    log: list[str] = []

    async def on_bumped(event: Bumped) -> None:
        log.append("handler")

    bus = make_bus(
        store,
        [tracer("outer", log), tracer("inner", log)],
        command_handlers={Bump: bump},
        event_handlers={Bumped: [on_bumped]},
    )
    assert await bus.handle(Bump(key="a", by=2)) == 2
    assert log == [
        "outer>command:Bump:bump",
        "inner>command:Bump:bump",
        "inner<",
        "outer<",
        "outer>event:Bumped:on_bumped",
        "inner>event:Bumped:on_bumped",
        "handler",
        "inner<",
        "outer<",
    ]


async def test_a_middleware_can_refuse_a_command_before_its_handler_runs(store: FakeStore) -> None:
    """Raising instead of calling call_next() stops the command; the caller gets that error and nothing changes."""

    async def deny(call: HandlerCall, call_next: CallNext) -> Any:
        raise AuthorizationError("not allowed", message_type=call.message.message_type)

    bus = make_bus(store, [deny], command_handlers={Bump: bump})
    with pytest.raises(AuthorizationError):
        await bus.handle(Bump(key="a"))
    assert await value_of(store, "a") == 0
    assert bus.stats.commands_failed == 1


async def test_a_failing_middleware_on_an_event_handler_is_isolated(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """For events, a middleware error counts as that handler's failure; the other handlers still run."""
    ran: list[str] = []

    async def first(event: Noticed) -> None:
        ran.append("first")

    async def second(event: Noticed) -> None:
        ran.append("second")

    async def refuse_first(call: HandlerCall, call_next: CallNext) -> Any:
        if call.handler.endswith("first"):
            raise RuntimeError("refused")
        return await call_next()

    bus = make_bus(store, [refuse_first], event_handlers={Noticed: [first, second]})
    with caplog.at_level(logging.CRITICAL, logger="keel.messagebus"):
        await bus.handle(Noticed(what="x"))
    assert ran == ["second"]
    assert bus.stats.event_handler_failures == 1


async def test_retries_happen_inside_the_chain(store: FakeStore) -> None:
    """A middleware sees one call per handler, however many attempts the retry policy makes."""
    calls: list[HandlerCall] = []
    conflicts = [ConcurrencyError("lost a race")]

    async def count(call: HandlerCall, call_next: CallNext) -> Any:
        calls.append(call)
        return await call_next()

    async def contended(cmd: Bump, uow: FakeUnitOfWork) -> int:
        if conflicts:
            raise conflicts.pop()
        return await bump(cmd, uow)

    bus = make_bus(store, [count], command_handlers={Bump: contended})
    assert await bus.handle(Bump(key="a")) == 1
    assert len(calls) == 1
    assert bus.stats.command_retries == 1


async def test_middleware_runs_inside_the_commands_context(store: FakeStore) -> None:
    """The command's id is already set when the chain runs, so an audit middleware can name it."""
    seen: list[str | None] = []

    async def audit(call: HandlerCall, call_next: CallNext) -> Any:
        context = current_command()
        seen.append(context.command_id if context else None)
        return await call_next()

    bus = make_bus(store, [audit], command_handlers={Bump: bump})
    await bus.handle(Bump(key="a"), idempotency_key="req-1")
    assert seen == ["req-1"]


def test_a_middleware_that_is_not_callable_is_refused_when_the_bus_is_built(store: FakeStore) -> None:
    """A wiring mistake fails at start-up, not on the first message."""
    with pytest.raises(BusConfigurationError, match="callable"):
        make_bus(store, [object()])  # type: ignore[list-item]


async def test_the_container_passes_its_bus_middleware_to_the_bus(tmp_path: Path) -> None:
    """`bus_middleware` is the container's seam: security and telemetry add to it without touching the bus."""
    log: list[str] = []

    async def ping(cmd: Bump) -> str:
        return cmd.key

    container = KeelContainer()
    container.settings.override(
        providers.Object(KeelSettings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/m.db"}))
    )
    container.bus_middleware.override(providers.List(providers.Object(tracer("t", log))))
    container.command_handlers.override(providers.Dict({Bump: ping}))
    async with running(container):
        assert await container.bus().handle(Bump(key="k")) == "k"
    assert log == ["t>command:Bump:ping", "t<"]
