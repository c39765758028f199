"""A decorator-based handler registry, the alternative to explicit mappings.

.. code-block:: python

    handlers = HandlerRegistry(commands=commands)   # every command there needs a handler

    @handlers.register                  # the message type comes from the annotation
    async def allocate(cmd: Allocate, uow: AllocationUnitOfWork) -> str | None: ...

    @handlers.register(Deallocated)     # or name it
    async def reallocate(event, bus: MessageBus) -> None: ...

    bus = MessageBus(uow_factory, registry=handlers)
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from keel.domain.messages import Command, DomainEvent, Message
from keel.service_layer.errors import BusConfigurationError
from keel.service_layer.injection import Handler, handler_name

H = TypeVar("H", bound=Callable[..., Any])

#: What a registry or bus can be told must have command handlers: command
#: classes, or modules whose every ``Command`` subclass counts.
CommandSpec = type[Command] | types.ModuleType


class HandlerRegistry:
    """Handlers collected by decorator, per message type.

    A command gets exactly one handler (a second registration is an error);
    an event gets any number, called in registration order.
    """

    def __init__(self, *, commands: Iterable[CommandSpec] = ()) -> None:
        self._commands: dict[type[Command], Handler] = {}
        self._events: dict[type[DomainEvent], list[Handler]] = {}
        #: Commands that must have a handler when a bus is built from this registry.
        self.required_commands: tuple[CommandSpec, ...] = tuple(commands)

    @overload
    def register(self, message_type: type[Message], /, *more: type[Message]) -> Callable[[H], H]: ...

    @overload
    def register(self, handler: H, /) -> H: ...

    def register(self, target: Any, /, *more: type[Message]) -> Any:
        """Register a handler, for the message type(s) given or read from its first parameter."""
        if isinstance(target, type) and issubclass(target, Message):
            message_types = (target, *more)

            def decorator(handler: H) -> H:
                for message_type in message_types:
                    self.add(message_type, handler)
                return handler

            return decorator
        if more or not callable(target):
            raise BusConfigurationError(f"register() takes message types or a handler, not {target!r}")
        for message_type in message_types_of(target):
            self.add(message_type, target)
        return target

    def add(self, message_type: type[Message], handler: Handler) -> None:
        """Register ``handler`` for ``message_type`` explicitly."""
        if isinstance(message_type, type) and issubclass(message_type, Command):
            current = self._commands.get(message_type)
            if current is not None and current is not handler:
                raise BusConfigurationError(
                    f"command {message_type.__name__} already has a handler ({handler_name(current)}); "
                    f"a command has exactly one, so {handler_name(handler)} cannot be added"
                )
            self._commands[message_type] = handler
        elif isinstance(message_type, type) and issubclass(message_type, DomainEvent):
            handlers = self._events.setdefault(message_type, [])
            if handler not in handlers:
                handlers.append(handler)
        else:
            raise BusConfigurationError(f"{message_type!r} is neither a Command nor a DomainEvent subclass")

    def include(self, other: HandlerRegistry) -> None:
        """Take every handler and required command of ``other`` (one registry per module, merged)."""
        for command, handler in other._commands.items():
            self.add(command, handler)
        for event, handlers in other._events.items():
            for handler in handlers:
                self.add(event, handler)
        self.required_commands += other.required_commands

    @property
    def command_handlers(self) -> dict[type[Command], Handler]:
        """A copy of the command mapping, as ``MessageBus(command_handlers=...)`` takes it."""
        return dict(self._commands)

    @property
    def event_handlers(self) -> dict[type[DomainEvent], list[Handler]]:
        """A copy of the event mapping, as ``MessageBus(event_handlers=...)`` takes it."""
        return {event: list(handlers) for event, handlers in self._events.items()}


def message_types_of(handler: Handler) -> list[type[Message]]:
    """The message type(s) a handler's first parameter is annotated with (``A | B`` gives both)."""
    name = handler_name(handler)
    target = handler.func if isinstance(handler, functools.partial) else handler
    try:
        first = next(iter(inspect.signature(target).parameters), None)
        hints = typing.get_type_hints(target)
    except Exception as exc:  # unresolvable forward references, odd callables
        raise BusConfigurationError(
            f"cannot read the annotations of handler {name} ({exc}); name the message type: @register(Message)"
        ) from exc
    hint = hints.get(first) if first else None
    candidates = typing.get_args(hint) if _is_union(hint) else (hint,)
    found: list[type[Message]] = [c for c in candidates if isinstance(c, type) and issubclass(c, Command | DomainEvent)]
    if not found or len(found) != len(candidates):
        raise BusConfigurationError(
            f"handler {name}: annotate its first parameter with the command or event it handles, "
            "or name the type: @register(Message)"
        )
    return found


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def command_types(specs: Iterable[CommandSpec]) -> list[type[Command]]:
    """Expand modules into the ``Command`` subclasses they define."""
    found: list[type[Command]] = []
    for spec in specs:
        if isinstance(spec, types.ModuleType):
            for value in vars(spec).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Command)
                    and value is not Command
                    and value.__module__ == spec.__name__
                ):
                    found.append(value)
        elif isinstance(spec, type) and issubclass(spec, Command):
            found.append(spec)
        else:
            raise BusConfigurationError(f"{spec!r} is neither a Command subclass nor a module of commands")
    return list(dict.fromkeys(found))
