"""A context manager that turns driver errors into keel errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import object_session

from keel.cross_cutting.error import DatabaseError, KeelError, ValidationError
from keel.infrastructure.database.errors import attached_elsewhere, translate_db_error

#: Raised by a column type or the driver while binding a parameter, before
#: anything reaches the database: the value, not the database, is at fault.
_BIND_ERRORS = (ValueError, OverflowError, TypeError)


@contextmanager
def translating(**context: Any) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors as keel errors (the original is ``__cause__``)."""
    try:
        yield
    except SQLAlchemyError as exc:
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


def _statement_error(exc: SQLAlchemyError, **context: Any) -> KeelError | None:
    """A keel error for a statement that failed before the driver ran it (None: not that case).

    A value no column type can bind (a datetime that overflows when moved to
    UTC, say) is a :class:`ValidationError`; the message names the kind of
    failure only, as the value may be anything a client sent.
    """
    if not isinstance(exc, StatementError) or isinstance(exc, DBAPIError):
        return None
    if isinstance(exc.orig, _BIND_ERRORS):
        problem = f"a value could not be sent to the database ({type(exc.orig).__name__})"
        return ValidationError(problem, errors=[{"loc": [], "msg": problem, "type": "value_error"}], **context)
    return DatabaseError("the statement could not be prepared", **context)
