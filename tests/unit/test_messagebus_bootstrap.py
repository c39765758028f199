"""MessageBus wiring errors surface when the bus is built, naming what is missing."""

from __future__ import annotations

import types

import pytest

from keel import BusConfigurationError, Command, MessageBus
from tests.unit.bus_fakes import Bump, Bumped, Fail, FakeStore, FakeUnitOfWork


def factory() -> FakeUnitOfWork:
    return FakeUnitOfWork(FakeStore())


async def needs_mailer(cmd: Bump, uow: FakeUnitOfWork, mailer: object) -> None:
    """A handler with a dependency."""


def test_a_parameter_nothing_can_fill_fails_at_bootstrap_naming_it() -> None:
    """The error names the handler, the parameter and what is available."""
    with pytest.raises(BusConfigurationError) as caught:
        MessageBus(factory, command_handlers={Bump: needs_mailer}, dependencies={"clock": object()})
    message = str(caught.value)
    assert "needs_mailer" in message
    assert "'mailer'" in message
    assert "dependencies: clock" in message
    assert caught.value.details["missing"] == ["mailer"]


def test_an_event_handlers_missing_dependency_fails_at_bootstrap_too() -> None:
    """Event handlers are checked as well as command handlers."""

    async def on_bumped(event: Bumped, sms: object) -> None: ...

    with pytest.raises(BusConfigurationError, match="'sms'"):
        MessageBus(factory, event_handlers={Bumped: [on_bumped]})


def test_required_commands_without_a_handler_fail_at_bootstrap() -> None:
    """`commands=` lists command types that must be handled; the error names the orphans."""
    with pytest.raises(BusConfigurationError, match="no handler for command Fail") as caught:
        MessageBus(factory, command_handlers={Bump: lambda cmd: None}, commands=[Bump, Fail])
    assert caught.value.details["commands"] == ["Fail"]


def test_a_module_of_commands_requires_a_handler_for_each() -> None:
    """Passing a module checks every Command subclass defined in it."""
    module = types.ModuleType("shop.commands")

    class Ship(Command):
        order: str

    class Cancel(Command):
        order: str

    Ship.__module__ = Cancel.__module__ = module.__name__
    module.Ship, module.Cancel = Ship, Cancel  # type: ignore[attr-defined]
    module.Command = Command  # type: ignore[attr-defined]  # imported names do not count
    with pytest.raises(BusConfigurationError, match=r"no handler for command Cancel$"):
        MessageBus(factory, command_handlers={Ship: lambda cmd: None}, commands=[module])


def test_dependencies_may_not_shadow_what_the_bus_injects() -> None:
    """`uow` and `bus` are the bus's own names."""
    with pytest.raises(BusConfigurationError, match="'uow'"):
        MessageBus(factory, dependencies={"uow": object()})


def test_a_handler_must_take_the_message_first() -> None:
    """A handler without a positional first parameter cannot receive the message."""

    async def no_message(*, uow: FakeUnitOfWork) -> None: ...

    with pytest.raises(BusConfigurationError, match="first positional parameter"):
        MessageBus(factory, command_handlers={Bump: no_message})


def test_event_handlers_must_be_given_as_a_list() -> None:
    """A single handler where a list is expected is caught early."""

    async def on_bumped(event: Bumped) -> None: ...

    with pytest.raises(BusConfigurationError, match="list of handlers"):
        MessageBus(factory, event_handlers={Bumped: on_bumped})  # type: ignore[dict-item]


def test_a_non_message_key_is_refused() -> None:
    """Mapping keys must be Command or DomainEvent subclasses."""
    with pytest.raises(BusConfigurationError, match="neither a Command nor a DomainEvent"):
        MessageBus(factory, command_handlers={str: lambda m: None})  # type: ignore[dict-item]


def test_the_bus_describes_its_routes() -> None:
    """repr lists the command and event types it handles."""

    async def on_bumped(event: Bumped) -> None: ...

    bus = MessageBus(factory, command_handlers={Bump: lambda c: None}, event_handlers={Bumped: [on_bumped]})
    assert repr(bus) == "MessageBus(commands=[Bump], events=[Bumped])"
    assert bus.handles(Bump)
    assert bus.handles(Bumped)
    assert not bus.handles(Fail)
