"""Translate driver exceptions into keel errors at the infrastructure edge."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import exc as sa_exc

from keel.cross_cutting.error import (
    ConcurrencyError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    KeelError,
)

#: SQLSTATEs that mean "retry the transaction": serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57P")  # connection exceptions, operator intervention
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
    if not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    if isinstance(exc, sa_exc.DBAPIError):
        code = sqlstate(exc)
        if code in RETRYABLE_SQLSTATES:
            return ConcurrencyError("the transaction conflicted with a concurrent one", sqlstate=code, **context)
        if exc.connection_invalidated or (code is not None and code.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)):
            return DatabaseUnavailableError("the database connection was lost", sqlstate=code, **context)
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


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying the whole unit of work for."""
    return isinstance(exc, ConcurrencyError | DatabaseUnavailableError)
