"""``MessageBus``: commands to their one handler, events to all of theirs, after commit.

.. code-block:: python

    bus = MessageBus(
        uow_factory,                                  # () -> a fresh unit of work
        command_handlers={Allocate: allocate},
        event_handlers={Allocated: [update_view, notify]},
        dependencies={"notifications": email_sender},
    )
    batchref = await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=1))

Each ``handle`` call has its own queue, so one bus serves any number of
concurrent requests. A handler's events enter that queue only once its unit
of work has committed (``collect_new_events``), and are handled in order
before ``handle`` returns. Commands fail loudly; event handlers fail alone.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from keel.domain.messages import Command, DomainEvent, Message
from keel.service_layer._handler_runs import HandlerRuns
from keel.service_layer.commands import (
    CommandAlreadyHandledError,
    new_context,
    reset_current,
    set_current,
)
from keel.service_layer.errors import BusConfigurationError
from keel.service_layer.injection import RESERVED, Handler, PreparedHandler, prepare
from keel.service_layer.middleware import Middleware
from keel.service_layer.registry import CommandSpec, HandlerRegistry, command_types
from keel.service_layer.retry import RetryPolicy
from keel.service_layer.unit_of_work import AbstractUnitOfWork

logger = logging.getLogger("keel.messagebus")

UnitOfWorkFactory = Callable[[], AbstractUnitOfWork]

#: Event handlers retry less by default: the command they follow has already committed.
DEFAULT_EVENT_RETRY = RetryPolicy(max_attempts=3)


@dataclass
class BusStats:
    """Counters since the bus was built (read them for metrics and tests).

    Updated only from the event loop's thread, so plain integers suffice.
    """

    commands_handled: int = 0
    commands_failed: int = 0
    command_retries: int = 0
    #: Commands refused because an earlier attempt or request had already applied them.
    commands_already_handled: int = 0
    events_handled: int = 0
    event_handler_failures: int = 0
    event_handler_retries: int = 0
    #: ``module.qualname`` of an event handler -> how many times it failed for good.
    failures_by_handler: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain data."""
        data = asdict(self)
        data["failures_by_handler"] = dict(self.failures_by_handler)
        return data


class MessageBus(HandlerRuns):
    """Dispatches commands and events to handlers, injecting their parameters by name.

    Everything that can be checked is checked here, when the bus is built: a
    handler parameter that nothing can fill, a command type registered twice,
    a required command without a handler.

    Args:
        uow_factory: returns a fresh unit of work; a handler parameter named
            ``uow`` gets a new one per message (and per retry).
        command_handlers: command type -> its one handler.
        event_handlers: event type -> handlers, called in order. A handler
            registered for a base class also receives its subclasses.
        dependencies: other handler parameters, by name.
        registry: a :class:`HandlerRegistry` whose handlers are added too.
        commands: command types, or modules of them, that must have a handler.
        command_retry: retry policy for command handlers (default: on
            :class:`keel.ConcurrencyError`, 10 attempts). An attempt whose
            injected unit of work already committed (or any unit of work that
            recorded the command) is never retried: running the handler again
            would repeat that work.
        event_retry: retry policy for each event handler (default: 3 attempts).
        middleware: wrap every handler call, the first outermost; see
            :mod:`keel.service_layer.middleware`.
        audit: whether audit middleware records this bus's commands (it
            reads ``call.bus.audit``); the bus itself writes nothing. The
            container passes ``KEEL_SECURITY__AUDIT``.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        command_handlers: Mapping[type[Command], Handler] | None = None,
        event_handlers: Mapping[type[DomainEvent], Sequence[Handler]] | None = None,
        dependencies: Mapping[str, object] | None = None,
        *,
        registry: HandlerRegistry | None = None,
        commands: Iterable[CommandSpec] = (),
        command_retry: RetryPolicy | None = None,
        event_retry: RetryPolicy | None = None,
        middleware: Sequence[Middleware] = (),
        audit: bool = True,
    ) -> None:
        deps = dict(dependencies or {})
        clash = sorted(RESERVED & deps.keys())
        if clash:
            raise BusConfigurationError(
                f"dependencies may not be named {', '.join(map(repr, clash))}: the bus injects those itself"
            )
        merged = HandlerRegistry()
        if registry is not None:
            merged.include(registry)
        for command, handler in (command_handlers or {}).items():
            merged.add(command, handler)
        for event, handlers in (event_handlers or {}).items():
            if callable(handlers):
                raise BusConfigurationError(
                    f"event_handlers[{_name(event)}] must be a list of handlers, not one handler"
                )
            for handler in handlers:
                merged.add(event, handler)

        self._uow_factory = uow_factory
        self._commands: dict[type[Command], PreparedHandler] = {
            command: prepare(handler, command, deps) for command, handler in merged.command_handlers.items()
        }
        self._events: dict[type[DomainEvent], tuple[PreparedHandler, ...]] = {
            event: tuple(prepare(handler, event, deps) for handler in handlers)
            for event, handlers in merged.event_handlers.items()
        }
        self._event_routes: dict[type[DomainEvent], tuple[PreparedHandler, ...]] = {}
        self.command_retry = command_retry or RetryPolicy()
        self.event_retry = event_retry or DEFAULT_EVENT_RETRY
        self.stats = BusStats()
        self.audit = audit
        self._middleware: tuple[Middleware, ...] = tuple(middleware)
        for layer in self._middleware:
            if not callable(layer):
                raise BusConfigurationError(f"middleware must be callable, not {type(layer).__name__}")

        required = command_types([*commands, *merged.required_commands])
        unhandled = [command for command in required if self._command_handler(command) is None]
        if unhandled:
            names = ", ".join(_name(c) for c in unhandled)
            raise BusConfigurationError(f"no handler for command {names}", commands=[_name(c) for c in unhandled])

    def __repr__(self) -> str:
        commands = ", ".join(_name(c) for c in self._commands)
        events = ", ".join(_name(e) for e in self._events)
        return f"MessageBus(commands=[{commands}], events=[{events}])"

    # --- public API ------------------------------------------------------------

    async def handle(self, message: Message, *, idempotency_key: str | None = None) -> Any:
        """Handle ``message`` and every event that follows from it; return the command's result.

        A command's error propagates (after the events of any work it did
        commit have been handled); an event handler's error is logged and
        counted, and the other handlers still run.

        A command gets an id for its handling, the same in every retry:
        ``idempotency_key`` when given (a client's ``Idempotency-Key``),
        otherwise a random one. Where units of work record commands (the
        container's do), a command whose id was already committed raises
        :class:`keel.CommandAlreadyHandledError` instead of being applied again.
        """
        queue: deque[DomainEvent] = deque()
        if isinstance(message, Command):
            token = set_current(new_context(message.message_type, idempotency_key))
            try:
                result = await self._handle_command(message, queue)
            except Exception:
                reset_current(token)
                await self._drain(queue)
                raise
            except BaseException:  # cancelled: leave the caller's context as it was
                reset_current(token)
                raise
            reset_current(token)
            await self._drain(queue)
            return result
        if idempotency_key is not None:
            raise TypeError("idempotency_key is for commands: events are handled by every handler, each time")
        if isinstance(message, DomainEvent):
            queue.append(message)
            await self._drain(queue)
            return None
        raise TypeError(f"MessageBus.handle takes a Command or a DomainEvent, not {type(message).__name__}")

    def handles(self, message_type: type[Message]) -> bool:
        """Whether a handler is registered for ``message_type`` (or one of its bases)."""
        if issubclass(message_type, Command):
            return self._command_handler(message_type) is not None
        if issubclass(message_type, DomainEvent):
            return bool(self._event_handlers(message_type))
        return False

    # --- commands --------------------------------------------------------------

    async def _handle_command(self, command: Command, queue: deque[DomainEvent]) -> Any:
        handler = self._command_handler(type(command))
        if handler is None:
            raise BusConfigurationError(f"no handler for command {_name(type(command))}", command=_name(type(command)))
        try:
            result = await self._dispatch(handler, command, queue, self.command_retry, "command")
        except CommandAlreadyHandledError:
            self.stats.commands_already_handled += 1
            raise
        except Exception:
            self.stats.commands_failed += 1
            raise
        self.stats.commands_handled += 1
        return result

    def _command_handler(self, command_type: type[Command]) -> PreparedHandler | None:
        for klass in command_type.__mro__:
            handler = self._commands.get(klass)
            if handler is not None:
                return handler
        return None

    # --- events (one handler runs in HandlerRuns) ------------------------------

    async def _drain(self, queue: deque[DomainEvent]) -> None:
        if not queue:
            return
        # Event handlers' units of work are not the command's: they must not record its id.
        token = set_current(None)
        try:
            await self._drain_events(queue)
        finally:
            reset_current(token)

    async def _drain_events(self, queue: deque[DomainEvent]) -> None:
        while queue:
            event = queue.popleft()
            for handler in self._event_handlers(type(event)):
                try:
                    await self._dispatch(handler, event, queue, self.event_retry, "event")
                except Exception:
                    self.stats.event_handler_failures += 1
                    self.stats.failures_by_handler[handler.name] += 1
                    logger.exception(
                        "event handler %s failed on %s %s; the other handlers still run",
                        handler.name,
                        event.message_type,
                        event.event_id,
                        extra={"keel_handler": handler.name, "keel_message": event.message_type},
                    )
            self.stats.events_handled += 1

    def _event_handlers(self, event_type: type[DomainEvent]) -> tuple[PreparedHandler, ...]:
        # A cache of MRO walks: concurrent writers store equal values, so it needs no lock.
        route = self._event_routes.get(event_type)
        if route is None:
            found: list[PreparedHandler] = []
            for klass in event_type.__mro__:
                found.extend(self._events.get(klass, ()))
            route = self._event_routes[event_type] = tuple(found)
        return route


def _name(message_type: type[Any]) -> str:
    return getattr(message_type, "__name__", repr(message_type))
