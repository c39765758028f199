"""HandlerRegistry: decorator registration, inference from annotations, merging."""

from __future__ import annotations

import pytest

from keel import BusConfigurationError, DomainEvent, HandlerRegistry, MessageBus
from tests.unit import bus_fakes
from tests.unit.bus_fakes import Bump, Bumped, Fail, FakeStore, FakeUnitOfWork, Noticed, seeded

handlers = HandlerRegistry()


@handlers.register
async def bump(cmd: Bump, uow: FakeUnitOfWork) -> int:
    async with uow:
        item = await uow.items.get(cmd.key)
        item.bump(cmd.by)
        await uow.commit()
    return item.value


@handlers.register
async def on_anything(event: Bumped | Noticed, log: list[str]) -> None:
    log.append(type(event).__name__)


@handlers.register(Fail)
async def fail(cmd, uow):  # type: ignore[no-untyped-def]
    raise RuntimeError(cmd.reason)


def test_the_message_type_is_read_from_the_first_annotation() -> None:
    """@register reads the type, a union registers for each member, @register(T) names it."""
    assert handlers.command_handlers == {Bump: bump, Fail: fail}
    assert handlers.event_handlers == {Bumped: [on_anything], Noticed: [on_anything]}


async def test_a_bus_built_from_a_registry_dispatches_to_its_handlers() -> None:
    """MessageBus(registry=...) takes every handler of the registry."""
    store = await seeded("k")
    log: list[str] = []
    bus = MessageBus(lambda: FakeUnitOfWork(store), registry=handlers, dependencies={"log": log})
    assert await bus.handle(Bump(key="k", by=2)) == 2
    await bus.handle(Noticed(what="x"))
    assert log == ["Bumped", "Noticed"]


def test_a_second_handler_for_a_command_is_refused() -> None:
    """A command has exactly one handler."""
    registry = HandlerRegistry()
    registry.add(Bump, bump)
    with pytest.raises(BusConfigurationError, match="already has a handler"):
        registry.register(Bump)(fail)


def test_a_handler_without_a_message_annotation_is_refused() -> None:
    """Without an annotation the type must be named."""
    registry = HandlerRegistry()

    async def untyped(cmd, uow):  # type: ignore[no-untyped-def]
        return None

    async def wrong(cmd: int) -> None:
        return None

    with pytest.raises(BusConfigurationError, match="annotate its first parameter"):
        registry.register(untyped)
    with pytest.raises(BusConfigurationError, match="annotate its first parameter"):
        registry.register(wrong)


def test_registries_merge_and_carry_their_required_commands() -> None:
    """include() merges handlers; required commands travel with them to the bus."""
    mine = HandlerRegistry(commands=[bus_fakes])
    mine.include(handlers)
    assert set(mine.command_handlers) == {Bump, Fail}
    MessageBus(lambda: FakeUnitOfWork(FakeStore()), registry=mine, dependencies={"log": []})

    partial = HandlerRegistry(commands=[bus_fakes])
    partial.add(Bump, bump)
    with pytest.raises(BusConfigurationError, match="no handler for command Fail"):
        MessageBus(lambda: FakeUnitOfWork(FakeStore()), registry=partial)


def test_an_explicit_mapping_and_a_registry_may_not_both_handle_a_command() -> None:
    """Combining sources keeps the one-handler rule."""
    with pytest.raises(BusConfigurationError, match="Bump already has a handler"):
        MessageBus(
            lambda: FakeUnitOfWork(FakeStore()),
            registry=handlers,
            command_handlers={Bump: lambda cmd: None},
            dependencies={"log": []},
        )


def test_registering_a_non_message_type_is_refused() -> None:
    """Only Command and DomainEvent subclasses have handlers."""
    registry = HandlerRegistry()
    with pytest.raises(BusConfigurationError, match="neither a Command nor a DomainEvent"):
        registry.add(int, bump)  # type: ignore[arg-type]
    with pytest.raises(BusConfigurationError, match="message types or a handler"):
        registry.register(42)  # type: ignore[call-overload]


def test_an_event_handler_is_registered_once_per_event() -> None:
    """Registering the same event handler twice is idempotent."""
    registry = HandlerRegistry()

    async def on_event(event: DomainEvent) -> None: ...

    registry.add(Bumped, on_event)
    registry.add(Bumped, on_event)
    assert registry.event_handlers == {Bumped: [on_event]}
