"""Per-request pieces: the container's lifespan, a fresh unit of work or the bus as dependencies,
and the request context (correlation id, principal) set around every request.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.cross_cutting.error import KeelError
from keel.cross_cutting.security import Principal, as_principal
from keel.ext.fastapi._problems import PROBLEM_JSON, keel_error
from keel.service_layer import MessageBus
from keel.service_layer.context import message_context

#: Where the app keeps its container (``app.state.keel_container``).
CONTAINER_STATE = "keel_container"
#: The header that carries a correlation id in and out.
CORRELATION_HEADER = "X-Correlation-ID"
#: A correlation id a client may send: short, and safe to echo and log.
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

#: Who is calling: a principal, ``None`` for anonymous, or a keel error (401/403) to refuse the request.
Authenticator = Callable[[Request], Awaitable[Principal | None]]


def keel_lifespan(container: Any) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan`` that starts the container's resources and stops them at shutdown.

    The bus is built at start, so a wiring error stops start-up instead of
    failing the first request. ``FastAPI(lifespan=keel_lifespan(container))``.
    """
    from keel.container import running

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setattr(app.state, CONTAINER_STATE, container)
        async with running(container):
            container.bus()
            yield

    return lifespan


def container_of(request: Request) -> Any:
    """The container :func:`install_keel` (or :func:`keel_lifespan`) attached to the app."""
    container = getattr(request.app.state, CONTAINER_STATE, None)
    if container is None:
        raise RuntimeError("no keel container on this app: call keel.ext.fastapi.install_keel(app, container)")
    return container


# The dependencies below are ``async def`` although they never await: FastAPI runs
# a plain ``def`` dependency in its thread pool, a thread hop per request (and
# per dependency) that cost the allocation example ~10% of its CPU under load.


async def unit_of_work(request: Request) -> Any:
    """A fresh unit of work from the app's container: ``uow: Annotated[AppUnitOfWork, Depends(unit_of_work)]``."""
    return container_of(request).unit_of_work()


async def message_bus(request: Request) -> MessageBus:
    """The app's message bus: ``bus: Annotated[MessageBus, Depends(message_bus)]``."""
    bus: MessageBus = container_of(request).bus()
    return bus


class RequestContextMiddleware:
    """Pure ASGI middleware: each request runs in a correlation and as its caller.

    The correlation id is the request's ``X-Correlation-ID`` when it is a
    short, safe token, else a new one; the response carries it back. The
    principal comes from the authenticator; a keel error it raises (an
    expired token, say) is answered as a problem without reaching the route.
    Pure ASGI rather than ``BaseHTTPMiddleware`` so the context variables are
    those of the task that runs the endpoint.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None = None) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        given = request.headers.get(CORRELATION_HEADER)
        with message_context(correlation_id=given if given and _CORRELATION_ID.match(given) else None) as correlation:

            async def send_with_correlation(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    headers.append((CORRELATION_HEADER.lower().encode(), correlation.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            principal: Principal | None = None
            if self.authenticator is not None:
                try:
                    principal = await self.authenticator(request)
                except KeelError as refused:
                    response = await keel_error(request, refused)
                    assert response.media_type == PROBLEM_JSON
                    await response(scope, receive, send_with_correlation)
                    return
            with as_principal(principal):
                await self.app(scope, receive, send_with_correlation)


async def read_only_unit_of_work(request: Request) -> Any:
    """A fresh read-only unit of work (on a replica when there are some): for queries."""
    return container_of(request).read_only_unit_of_work()
