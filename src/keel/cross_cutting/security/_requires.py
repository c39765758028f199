"""``requires(...)``: the permissions a handler needs, enforced by the bus's ``authorize`` middleware.

The check runs in :func:`authorize`, bus middleware, before the handler is
called and before its unit of work opens: a refused command changes
nothing. The decorated handler checks again when it is called, so a bus
built by hand without ``authorize`` (or a direct call) cannot skip the
permission; its signature is the handler's own (``functools.wraps``), which
the bus's injection by parameter name reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from keel.cross_cutting.security._principal import current_principal
from keel.domain.errors import AuthenticationError, AuthorizationError, ConfigurationError
from keel.domain.messages import Message
from keel.service_layer.middleware import CallNext, HandlerCall

H = TypeVar("H", bound=Callable[..., Any])

#: The attribute ``requires`` sets on a handler: a frozenset of permission names.
REQUIRED_PERMISSIONS = "__keel_requires__"


def requires(*permissions: str) -> Callable[[H], H]:
    """Mark a handler as needing every one of ``permissions``; the bus refuses the message otherwise.

    Stacked decorators add up. Enforced by :func:`authorize` (the
    container's bus middleware includes it): an anonymous caller gets
    :class:`keel.AuthenticationError`, a principal without the permissions
    :class:`keel.AuthorizationError`.

    .. code-block:: python

        @requires("allocate")
        async def allocate(cmd: Allocate, uow: AppUnitOfWork) -> str: ...
    """
    if not permissions or not all(isinstance(p, str) and p.strip() for p in permissions):
        raise ConfigurationError("requires() takes one or more non-blank permission names")
    needed = frozenset(permissions)

    def wrap(handler: H) -> H:
        if not callable(handler):
            raise ConfigurationError(f"requires() decorates a handler, not {type(handler).__name__}")

        # Sync on purpose: it returns whatever the handler returns (a coroutine
        # for an async one), and the bus awaits what is awaitable.
        @functools.wraps(handler)
        def guarded(message: Any, /, *args: Any, **kwargs: Any) -> Any:
            check_permissions(needed, message if isinstance(message, Message) else None)
            return handler(message, *args, **kwargs)

        setattr(guarded, REQUIRED_PERMISSIONS, required_permissions(handler) | needed)
        return cast("H", guarded)

    return wrap


def required_permissions(handler: Callable[..., Any] | None) -> frozenset[str]:
    """The permissions ``requires`` marked ``handler`` with (none: an empty set)."""
    if handler is None:
        return frozenset()
    found = getattr(_unwrapped(handler), REQUIRED_PERMISSIONS, None)
    return found if isinstance(found, frozenset) else frozenset()


def check_permissions(required: Iterable[str], message: Message | None = None) -> None:
    """Raise unless the current principal holds every permission in ``required``."""
    needed = sorted(set(required))
    if not needed:
        return
    what = message.message_type if message is not None else "this"
    principal = current_principal()
    if principal is None:
        raise AuthenticationError(
            f"{what} needs an authenticated principal (permissions: {', '.join(needed)})",
            reason="missing",
            required=needed,
            missing=needed,
            principal=None,
        )
    missing = [permission for permission in needed if permission not in principal.permissions]
    if missing:
        raise AuthorizationError(
            f"principal {principal.id!r} may not handle {what}: missing permission(s) {', '.join(missing)}",
            required=needed,
            missing=missing,
            principal=principal.id,
        )


async def authorize(call: HandlerCall, call_next: CallNext) -> Any:
    """Bus middleware: refuse the call unless the principal holds the handler's ``requires`` permissions."""
    needed = required_permissions(call.function)
    if needed:
        check_permissions(needed, call.message)
    return await call_next()


def _unwrapped(handler: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(handler, functools.partial):
        handler = handler.func
    return handler
