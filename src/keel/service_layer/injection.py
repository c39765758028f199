"""Injection by parameter name: prepare a handler once, call it per message.

A handler's first parameter receives the message. Every other parameter is
filled by name: ``uow`` with a fresh unit of work from the bus's factory,
``bus`` with the bus itself (to send follow-up commands), anything else from
the ``dependencies`` mapping; a parameter with a default may stay unfilled.
All of this is worked out when the bus is built, so a parameter nothing can
fill fails at start-up with a message that names it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keel.service_layer.errors import BusConfigurationError

#: Anything callable as ``handler(message, **injected)``; sync or async.
Handler = Callable[..., Any]

#: Parameter names the bus fills itself.
UOW = "uow"
BUS = "bus"
RESERVED = frozenset({UOW, BUS})

_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_FIRST = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True, slots=True)
class PreparedHandler:
    """A handler with its static dependencies bound and its per-message needs known."""

    handler: Handler
    name: str
    call: Callable[..., Any]
    wants_uow: bool
    wants_bus: bool


def handler_name(handler: Handler) -> str:
    """``module.qualname`` of a handler, for logs, counters and errors."""
    target = handler.func if isinstance(handler, functools.partial) else handler
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{qualname}" if module else qualname


def prepare(
    handler: Handler,
    message_type: type[Any],
    dependencies: Mapping[str, object],
) -> PreparedHandler:
    """Check ``handler``'s parameters against what can be injected and bind the static ones."""
    name = handler_name(handler)
    if not callable(handler):
        raise BusConfigurationError(f"the handler for {message_type.__name__} is not callable: {handler!r}")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise BusConfigurationError(f"cannot read the signature of handler {name}: {exc}") from exc
    params = list(signature.parameters.values())
    if not params or params[0].kind not in _FIRST:
        raise BusConfigurationError(
            f"handler {name} for {message_type.__name__} must take the message as its first positional parameter"
        )
    bound: dict[str, object] = {}
    wants_uow = wants_bus = False
    missing: list[str] = []
    for param in params[1:]:
        if param.kind not in _BY_NAME:
            if param.kind is inspect.Parameter.POSITIONAL_ONLY and param.default is param.empty:
                raise BusConfigurationError(
                    f"handler {name} has positional-only parameter {param.name!r}: "
                    "injection is by name, so make it a normal or keyword-only parameter"
                )
            continue  # *args, **kwargs, or a positional-only with a default
        if param.name == UOW:
            wants_uow = True
        elif param.name == BUS:
            wants_bus = True
        elif param.name in dependencies:
            bound[param.name] = dependencies[param.name]
        elif param.default is param.empty:
            missing.append(param.name)
    if missing:
        available = ", ".join(sorted(dependencies)) or "none"
        needs = ", ".join(repr(m) for m in missing)
        raise BusConfigurationError(
            f"handler {name} for {message_type.__name__} needs {needs}, which no dependency provides "
            f"(dependencies: {available}; the bus itself provides uow and bus)",
            handler=name,
            missing=missing,
        )
    call = functools.partial(handler, **bound) if bound else handler
    return PreparedHandler(handler, name, call, wants_uow, wants_bus)
