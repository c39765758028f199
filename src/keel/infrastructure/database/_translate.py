"""Driver exceptions into keel errors, at the infrastructure edge.

:func:`translate_db_error` maps one exception (SQLSTATEs, SQLite result
codes, SQLAlchemy's own errors); :func:`translating` wraps a block of code
with it; :func:`connect_error` is the mapping for a connection that could not
be opened. Which keel errors are worth retrying is
:func:`keel.cross_cutting.error.is_transient`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import object_session
from sqlalchemy.orm.exc import StaleDataError

from keel.cross_cutting.error import (
    ConcurrencyError,
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailableError,
    KeelError,
    StatementTimeoutError,
    UnitOfWorkError,
    ValidationError,
)
from keel.infrastructure.database._integrity import constraint_error
from keel.infrastructure.database.stale_errors import StaleRowsError

#: SQLSTATEs that mean "retry the transaction": serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57P")  # connection exceptions, operator intervention
_QUERY_CANCELED = "57014"  # statement_timeout (or pg_cancel_backend)
_LOCK_NOT_AVAILABLE = "55P03"  # SELECT ... FOR UPDATE NOWAIT on a row locked elsewhere
_IN_FAILED_TRANSACTION = "25P02"  # a statement after an earlier one failed in this transaction
#: Why a connection could not be opened, by SQLSTATE class; the driver's own
#: message is not reused because it quotes user and database names.
_CONNECT_FAILURES = {
    "28": "authentication failed",
    "3D": "the database does not exist",
    "53": "the server is out of resources",
}
_SQLITE_BUSY = re.compile(r"database (table )?is locked|database is busy", re.IGNORECASE)
#: SQLite result codes (``sqlite3.Error.sqlite_errorname``, extended codes included) that
#: say the database file cannot be used right now, as opposed to a statement it refused.
_SQLITE_UNAVAILABLE = ("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_NOMEM")
_SQLITE_CONTENTION = ("SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_UNAVAILABLE_MESSAGE = re.compile(
    r"unable to open database file|disk I/O error|database or disk is full|out of memory", re.IGNORECASE
)
_SQLITE_MISSING = re.compile(r"no such (table|column)|table \S+ has no column", re.IGNORECASE)
_UNEXPECTED_ARGUMENT = re.compile(r"unexpected keyword argument '(\w+)'")


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
    parameter values. It stays available as ``__cause__``. Nor is the
    SQLSTATE (a backend internal): it goes to ``diagnostics``, for logs.
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
        return _diagnosed(_dbapi_error(exc, code, **context), code)
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseUnavailableError("no database connection became free in time", **context)
    if isinstance(exc, sa_exc.PendingRollbackError):
        return pending_rollback_error(**context)
    return None


def pending_rollback_error(**context: Any) -> UnitOfWorkError:
    """The error for using a unit of work whose transaction failed (SQLAlchemy's PendingRollbackError).

    A failed flush (a conflict, a stale version, a lost connection) leaves the
    transaction unusable, as SQLAlchemy's session does: rolling back on its
    own would silently drop the rest of the unit of work's changes.
    """
    return UnitOfWorkError(
        "the unit of work's transaction failed earlier (the error was raised then); "
        "call `await uow.rollback()` to start again, or leave the `async with` block",
        **context,
    )


def attached_elsewhere(entity: str) -> UnitOfWorkError:
    """The error for an entity that another open unit of work holds (SQLAlchemy: attached to another session)."""
    return UnitOfWorkError(
        f"this {entity} belongs to another open unit of work; load it in this one (or leave the other first)",
        entity=entity,
    )


def _dbapi_error(exc: sa_exc.DBAPIError, code: str | None, **context: Any) -> KeelError:
    if code in RETRYABLE_SQLSTATES:
        return ConcurrencyError("the transaction conflicted with a concurrent one", **context)
    if exc.connection_invalidated or (code is not None and code.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)):
        return DatabaseUnavailableError("the database connection was lost", **context)
    if code == _LOCK_NOT_AVAILABLE:
        return ConcurrencyError("the row is locked by a concurrent transaction (NOWAIT)", **context)
    if code == _QUERY_CANCELED:
        return StatementTimeoutError("the statement was cancelled (statement_timeout)", **context)
    if code == _IN_FAILED_TRANSACTION:
        return pending_rollback_error(**context)
    if isinstance(exc.orig, sqlite3.Error):
        return _sqlite_error(exc, **context)
    if isinstance(exc, sa_exc.IntegrityError):
        return constraint_error(exc, code, **context)
    if isinstance(exc, sa_exc.OperationalError):
        # psycopg raises OperationalError for a lost or refused connection.
        return DatabaseUnavailableError("the database is unavailable", **context)
    return DatabaseError("the database refused the statement", **context)


def _diagnosed(error: KeelError, code: str | None) -> KeelError:
    if code is not None:
        error.diagnostics["sqlstate"] = code
    return error


def _sqlite_error(exc: sa_exc.DBAPIError, **context: Any) -> KeelError:
    """SQLite reports most mistakes (no such table, a syntax error, a read-only file) as
    ``OperationalError`` too: only busy/locked is a conflict, and only a file it cannot
    open, read or grow makes the database unavailable; the rest are not worth retrying.
    """
    name = getattr(exc.orig, "sqlite_errorname", None) or ""
    message = str(exc.orig)
    reason = f" ({name})" if name else ""
    if name.startswith(_SQLITE_CONTENTION) or _SQLITE_BUSY.search(message):
        return ConcurrencyError("the database is locked by a concurrent writer", **context)
    if isinstance(exc, sa_exc.IntegrityError):
        return constraint_error(exc, None, **context)
    if name.startswith(_SQLITE_UNAVAILABLE) or _SQLITE_UNAVAILABLE_MESSAGE.search(message):
        return DatabaseUnavailableError(f"the database file cannot be used{reason}", **context)
    if _SQLITE_MISSING.match(message):
        # The usual cause; SQLite's message (the name) stays in ``__cause__``.
        return DatabaseError("a table or column the statement uses does not exist (are migrations applied?)", **context)
    return DatabaseError(f"the database refused the statement{reason}", **context)


def connect_error(exc: Exception, **context: Any) -> KeelError:
    """The keel error for a failure to open a connection (refused, unknown host, timeout, bad login).

    A driver that refuses its arguments (an unknown or misspelt URL query
    argument such as ``?sslmod=``, a value it does not accept) is a
    :class:`ConfigurationError`: retrying would only fail again.
    """
    misconfigured = _configuration_mistake(exc)
    if misconfigured is not None:
        return misconfigured
    code = sqlstate(exc)
    if isinstance(exc, TimeoutError):
        reason = "no answer within connect_timeout"
    elif isinstance(exc, OSError):
        reason = f"the server could not be reached ({type(exc).__name__})"
    elif isinstance(exc.__cause__ or exc, sqlite3.Error):
        reason = str(exc.__cause__ or exc)  # SQLite's messages quote no values ("unable to open database file")
    else:
        reason = _CONNECT_FAILURES.get((code or "")[:2], "the server refused the connection")
    return _diagnosed(DatabaseUnavailableError(f"cannot connect to the database: {reason}", **context), code)


def _configuration_mistake(exc: BaseException) -> ConfigurationError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TypeError | ValueError):
            # Only an argument's name is quoted: the driver's text may hold a value.
            unexpected = _UNEXPECTED_ARGUMENT.search(str(current))
            what = (
                f"the driver does not accept the connection argument {unexpected.group(1)!r} "
                "(a query argument of the URL?)"
                if unexpected
                else f"the driver refused the connection settings ({type(current).__name__})"
            )
            return ConfigurationError(f"KEEL_DATABASE__URL is invalid: {what}", variables=["KEEL_DATABASE__URL"])
        current = current.__cause__
    return None


# --- a block of code ------------------------------------------------------------------

#: Raised by a column type or the driver while binding a parameter, before
#: anything reaches the database: the value, not the database, is at fault.
_BIND_ERRORS = (ValueError, OverflowError, TypeError)


@contextmanager
def translating(**context: Any) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors as keel errors (the original is ``__cause__``)."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        translated = translate_db_error(exc, **context) or _statement_error(exc, **context)
        if translated is None:
            raise
        raise translated from exc


def require_attachable(session: AsyncSession, entity: object, name: str) -> None:
    """Refuse ``entity`` with a :class:`UnitOfWorkError` when another open session holds it.

    SQLAlchemy's own refusal is a bare ``InvalidRequestError``; a closed unit
    of work's entities (detached) are accepted, as SQLAlchemy accepts them.
    """
    owner = object_session(entity)
    if owner is not None and owner is not session.sync_session:
        raise attached_elsewhere(name)


def _statement_error(exc: sa_exc.SQLAlchemyError, **context: Any) -> KeelError | None:
    """A keel error for a statement that failed before the driver ran it (None: not that case).

    A value no column type can bind (a datetime that overflows when moved to
    UTC, say) is a :class:`ValidationError`; the message names the kind of
    failure only, as the value may be anything a client sent.
    """
    if not isinstance(exc, sa_exc.StatementError) or isinstance(exc, sa_exc.DBAPIError):
        return None
    if isinstance(exc.orig, _BIND_ERRORS):
        problem = f"a value could not be sent to the database ({type(exc.orig).__name__})"
        return ValidationError(problem, errors=[{"loc": [], "msg": problem, "type": "value_error"}], **context)
    return DatabaseError("the statement could not be prepared", **context)
