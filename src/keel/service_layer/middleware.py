"""Bus middleware: code that wraps every handler call, without touching the bus.

A middleware is an async callable ``(call, call_next) -> result``. ``call``
says which handler is about to run for which message; awaiting
``call_next()`` runs the rest of the chain and then the handler (with its
retries: a middleware sees each handler call once, however many attempts it
takes), and returns the handler's result. A middleware may refuse by raising
(a permission check raising :class:`keel.AuthorizationError`), time or trace
the call, or change the result. For a command, its error propagates like the
handler's; for an event, it is isolated like a failing event handler.

.. code-block:: python

    async def timing(call: HandlerCall, call_next: CallNext) -> Any:
        started = time.perf_counter()
        try:
            return await call_next()
        finally:
            metrics.observe(call.handler, time.perf_counter() - started)

    bus = MessageBus(uow_factory, command_handlers=..., middleware=[timing])

The first middleware in the list is the outermost. The protocol lives in the
service layer (it names only domain types), so implementations in
``keel.cross_cutting`` plug in through the container's ``bus_middleware``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from keel.domain.messages import Message

if TYPE_CHECKING:
    from keel.service_layer.messagebus import MessageBus

#: Runs the rest of the chain and the handler; returns the handler's result.
CallNext = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class HandlerCall:
    """One handler about to handle one message."""

    message: Message
    #: ``module.qualname`` of the handler.
    handler: str
    kind: Literal["command", "event"]
    #: The handler itself, as registered: what a decorator such as
    #: ``keel.security.requires`` marked (``None`` when built by hand).
    function: Callable[..., Any] | None = None
    #: The bus handling the message: its constructor flags (``audit``) are
    #: options for middleware, which the bus itself does not act on.
    bus: MessageBus | None = None


class Middleware(Protocol):
    """Wraps a handler call; see the module docstring."""

    def __call__(self, call: HandlerCall, call_next: CallNext, /) -> Awaitable[Any]:
        """Run ``call_next()`` (or refuse by raising) and return the result."""
        ...
