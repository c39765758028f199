"""Column types that behave the same on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from keel.cross_cutting.error import ValidationError


def require_aware(value: Any, field: str | None = None, entity: str | None = None) -> datetime:
    """``value`` if it is a timezone-aware datetime; :class:`keel.ValidationError` otherwise.

    The error names ``entity.field`` when known but never quotes the value.
    """
    where = ".".join(part for part in (entity, field) if part) or "value"
    if not isinstance(value, datetime):
        problem, kind = f"expected a datetime, got {type(value).__name__}", "datetime_type"
    elif value.tzinfo is None or value.utcoffset() is None:
        problem, kind = "a naive datetime; keel stores timezone-aware datetimes only", "timezone_aware"
    else:
        return value
    raise ValidationError(
        f"{where} is {problem}" if kind == "timezone_aware" else f"{where}: {problem}",
        errors=[{"loc": [field] if field else [], "msg": problem, "type": kind}],
    )


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are
    stored as naive UTC and given ``tzinfo=UTC`` back on load. Naive datetimes
    are refused on the way in: guessing their zone is how data gets corrupted.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def __repr__(self) -> str:
        # Autogenerate writes this into migrations: keep it the public spelling.
        return "UTCDateTime()"

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = require_aware(value)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value  # DateTime's own result processing has made it one
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
