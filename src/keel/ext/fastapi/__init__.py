"""``keel.ext.fastapi``: a FastAPI app on keel in a few lines (extra ``web``).

.. code-block:: python

    app = FastAPI(lifespan=keel_lifespan(container))
    install_keel(app, container, authenticator=my_authenticator)   # problems, context, health

    @app.post("/allocate", status_code=202)
    async def allocate(cmd: Allocate, bus: Annotated[MessageBus, Depends(message_bus)]) -> None:
        await bus.handle(cmd)

- :func:`install_problem_handlers`: every error answer is RFC 9457
  ``application/problem+json`` with keel's stable ``code``: keel errors,
  request validation, unknown routes (404), wrong methods (405), unreadable
  bodies (400) and crashes (500, nothing of the crash shown).
- :func:`keel_lifespan`: the container's resources start with the app and
  stop with it.
- :func:`unit_of_work`, :func:`read_only_unit_of_work` and :func:`message_bus`:
  dependencies that hand a request a fresh unit of work (a read-only one, on
  a replica when there are some) or the container's bus.
- :class:`RequestContextMiddleware`: a correlation id per request
  (``X-Correlation-ID`` in and out) and the principal from a pluggable
  authenticator, for the bus, the audit and the outbox to carry.
- :func:`health_router`: ``/health/live`` and ``/health/ready``.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from keel.cross_cutting.telemetry import instrument_app
from keel.ext.fastapi._health import health_router
from keel.ext.fastapi._problems import PROBLEM_JSON, STATUS_BY_ERROR, install_problem_handlers, problem, status_for
from keel.ext.fastapi._requests import (
    CORRELATION_HEADER,
    Authenticator,
    RequestContextMiddleware,
    container_of,
    keel_lifespan,
    message_bus,
    read_only_unit_of_work,
    unit_of_work,
)


def install_keel(
    app: FastAPI, container: Any, *, authenticator: Authenticator | None = None, health: bool = True
) -> None:
    """Attach ``container`` to ``app``, install the problem handlers, the request context and the health router.

    Start the container with ``FastAPI(lifespan=keel_lifespan(container))``
    (or start and stop its resources yourself, as tests do).
    """
    app.state.keel_container = container
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, authenticator=authenticator)
    if _telemetry_enabled(container):
        instrument_app(app)  # after the context middleware: outermost, so the HTTP span parents everything
    if health:
        app.include_router(health_router())


def _telemetry_enabled(container: Any) -> bool:
    settings = getattr(container, "settings", None)
    telemetry = getattr(settings() if callable(settings) else None, "telemetry", None)
    return bool(getattr(telemetry, "enabled", False))


__all__ = [
    "CORRELATION_HEADER",
    "PROBLEM_JSON",
    "STATUS_BY_ERROR",
    "Authenticator",
    "RequestContextMiddleware",
    "container_of",
    "health_router",
    "install_keel",
    "install_problem_handlers",
    "keel_lifespan",
    "message_bus",
    "problem",
    "read_only_unit_of_work",
    "status_for",
    "unit_of_work",
]
