"""Translate driver exceptions into keel errors at the infrastructure edge."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm.exc import StaleDataError

from keel.cross_cutting.error import (
    ConcurrencyError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    KeelError,
)
from keel.infrastructure.database.stale_deletes import StaleRowsError

#: SQLSTATEs that mean "retry the transaction": serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57P")  # connection exceptions, operator intervention
_QUERY_CANCELED = "57014"  # statement_timeout (or pg_cancel_backend)
#: Why a connection could not be opened, by SQLSTATE class; the driver's own
#: message is not reused because it quotes user and database names.
_CONNECT_FAILURES = {
    "28": "authentication failed",
    "3D": "the database does not exist",
    "53": "the server is out of resources",
}
_SQLITE_BUSY = re.compile(r"database (table )?is locked|database is busy", re.IGNORECASE)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a DBAPI error, whichever driver raised it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for attr in ("sqlstate", "pgcode"):
            code = getattr(current, attr, None)
            if isinstance(code, str) and code:
                return code
        current = getattr(current, "orig", None) or current.__cause__
    return None


def translate_db_error(exc: BaseException, **context: Any) -> KeelError | None:
    """The keel error for a SQLAlchemy/driver exception, or None if it is not one.

    The driver's message is not copied into ``details``: it can contain
    parameter values. It stays available as ``__cause__``.
    """
    if isinstance(exc, KeelError):
        return exc
    if isinstance(exc, OSError):  # includes TimeoutError: a socket-level failure under the driver
        return connect_error(exc, **context)
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, KeelError):
        return exc.orig  # raised by keel code SQLAlchemy called (a column type refusing a value)
    if not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    if isinstance(exc, StaleRowsError):
        return exc.to_keel_error()
    if isinstance(exc, StaleDataError):
        # Raised by an autoflush inside a query; the unit of work's commit
        # names the entity itself when it sees this first.
        return ConcurrencyError("a row was changed by someone else", **context)
    if isinstance(exc, sa_exc.DBAPIError):
        code = sqlstate(exc)
        if code in RETRYABLE_SQLSTATES:
            return ConcurrencyError("the transaction conflicted with a concurrent one", sqlstate=code, **context)
        if exc.connection_invalidated or (code is not None and code.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)):
            return DatabaseUnavailableError("the database connection was lost", sqlstate=code, **context)
        if code == _QUERY_CANCELED:
            return DatabaseError("the statement was cancelled (statement_timeout)", sqlstate=code, **context)
        if isinstance(exc, sa_exc.IntegrityError):
            return ConflictError("the change conflicts with existing data", sqlstate=code, **context)
        if isinstance(exc, sa_exc.OperationalError):
            if _SQLITE_BUSY.search(str(exc.orig)):
                return ConcurrencyError("the database is locked by a concurrent writer", **context)
            return DatabaseUnavailableError("the database is unavailable", sqlstate=code, **context)
        return DatabaseError("the database refused the statement", sqlstate=code, **context)
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseUnavailableError("no database connection became free in time", **context)
    return None


def connect_error(exc: Exception, **context: Any) -> DatabaseUnavailableError:
    """The keel error for a failure to open a connection (refused, unknown host, timeout, bad login)."""
    code = sqlstate(exc)
    if isinstance(exc, TimeoutError):
        reason = "no answer within connect_timeout"
    elif isinstance(exc, OSError):
        reason = f"the server could not be reached ({type(exc).__name__})"
    elif isinstance(exc.__cause__ or exc, sqlite3.Error):
        reason = str(exc.__cause__ or exc)  # SQLite's messages quote no values ("unable to open database file")
    else:
        reason = _CONNECT_FAILURES.get((code or "")[:2], "the server refused the connection")
    return DatabaseUnavailableError(f"cannot connect to the database: {reason}", sqlstate=code, **context)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying the whole unit of work for."""
    return isinstance(exc, ConcurrencyError | DatabaseUnavailableError)
