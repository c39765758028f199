"""Client-side timeouts that hold when the server stops answering (frozen, partitioned).

asyncpg's ``command_timeout`` raises a bare :class:`TimeoutError`, which
SQLAlchemy passes through untouched: not a DBAPI error, so the connection is
not invalidated (the next unit of work would wait on it again), and a
pre-ping that times out escapes the pool as that raw error instead of
replacing the connection. Here a timed-out connection is terminated at once
(SQLAlchemy's own graceful close would wait two more seconds on a frozen
server), dropped from the pool alone (a slow statement on a healthy server
must not recycle every connection), and reported as
:class:`DatabaseUnavailableError`, which the bus retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.cross_cutting.error import DatabaseUnavailableError


def install(engine: AsyncEngine) -> None:
    """Make ``engine``'s command timeouts fail fast, typed, and without reusing the connection."""
    sync_engine = engine.sync_engine
    event.listen(sync_engine, "handle_error", _on_error)
    dialect = sync_engine.dialect
    ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            return ping(dbapi_connection)
        except TimeoutError:
            # False means "disconnected": the pool replaces the connection,
            # and a server that is still frozen then fails connect_timeout.
            _terminate(dbapi_connection)
            return False

    # An instance attribute, so only keel's engines are affected.
    setattr(dialect, "do_ping", do_ping)  # noqa: B010 - mypy refuses assigning to a method


def timed_out(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what it wraps) is the driver giving up waiting for the server."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            return True
        seen.add(id(exc))
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


def _on_error(context: ExceptionContext) -> None:
    if not timed_out(context.original_exception):
        return
    context.is_disconnect = True
    context.invalidate_pool_on_disconnect = False
    connection = context.connection
    if connection is not None and not connection.invalidated:
        _terminate(connection.connection)
    raise DatabaseUnavailableError("the database did not answer within command_timeout")


def _terminate(connection: Any) -> None:
    # A pooled connection calls the driver's ``driver_connection``; SQLAlchemy's asyncpg adapter ``_connection``.
    driver_connection = getattr(connection, "driver_connection", None) or getattr(connection, "_connection", None)
    terminate = getattr(driver_connection, "terminate", None)
    if terminate is not None:
        terminate()
