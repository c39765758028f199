"""A context manager that turns driver errors into keel errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from keel.infrastructure.database.errors import translate_db_error


@contextmanager
def translating(**context: Any) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors as keel errors (the original is ``__cause__``)."""
    try:
        yield
    except SQLAlchemyError as exc:
        translated = translate_db_error(exc, **context)
        if translated is None:
            raise
        raise translated from exc
