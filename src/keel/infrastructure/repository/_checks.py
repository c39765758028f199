"""Argument checks shared by the SQL repository and its in-memory twin.

Both must refuse the same input with the same :class:`ValidationError`, so
the checks live here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import inspect

from keel.cross_cutting.error import ValidationError
from keel.infrastructure.database.orm import ModelTraits, model_traits
from keel.infrastructure.repository._sorting import column_attribute
from keel.infrastructure.repository.filters import storable_problem


def error(loc: str, msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": [loc], "msg": msg, "type": type_}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_limit(limit: int | None, offset: int | None) -> None:
    for name, value in (("limit", limit), ("offset", offset)):
        if value is not None and (not _is_int(value) or value < 0):
            raise ValidationError(f"{name} must be an integer >= 0", errors=[error(name, "must be an integer >= 0")])


def check_page(page: object) -> int:
    if not _is_int(page) or page < 1:  # type: ignore[operator]
        raise ValidationError("page must be an integer >= 1", errors=[error("page", "must be an integer >= 1")])
    return page  # type: ignore[return-value]


def check_size(size: object, *, default: int, maximum: int) -> int:
    """The page size: ``default`` when None; outside 1..``maximum`` is refused, never clamped."""
    if size is None:
        size = default
    if not _is_int(size) or not 1 <= size <= maximum:  # type: ignore[operator]
        raise ValidationError(
            f"size must be an integer between 1 and {maximum}",
            errors=[error("size", f"must be an integer between 1 and {maximum}")],
            maximum=maximum,
        )
    return size  # type: ignore[return-value]


def coerce_identity(model: type[Any], id: Any) -> tuple[Any, ...]:
    """A primary key value as a tuple, checked against the key's column types."""
    traits = model_traits(model)
    columns = list(inspect(model).primary_key)
    values = id if isinstance(id, tuple) else (id,)
    if len(values) != len(columns):
        raise ValidationError(
            f"{traits.entity} has a {len(columns)}-column primary key",
            errors=[error("id", f"expected {len(columns)} values")],
        )
    key = tuple(_coerce(column, value, traits.entity) for column, value in zip(columns, values, strict=True))
    for column, value in zip(columns, key, strict=True):
        problem = storable_problem(column.type, value)
        if problem:
            raise ValidationError(f"{traits.entity} id: {problem}", errors=[error("id", problem)])
    return key


def _coerce(column: Any, value: Any, entity: str) -> Any:
    try:
        expected = column.type.python_type
    except NotImplementedError:
        return value
    if value is None:
        raise ValidationError(f"{entity} id must not be None", errors=[error("id", "must not be None")])
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if expected is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if expected is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    try:
        return expected(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"{entity} id {str(value)[:100]!r} is not a valid {expected.__name__}",
            errors=[error("id", f"expected {expected.__name__}")],
        ) from None


def check_update_values(model: type[Any], traits: ModelTraits, values: Mapping[str, Any]) -> None:
    """``update_many`` may set ordinary columns only: keel maintains the others."""
    if not values:
        raise ValidationError("values must not be empty", errors=[error("values", "must not be empty")])
    managed = {traits.version, traits.created_at, traits.updated_at, traits.deleted_at, *traits.primary_key} - {None}
    for name in values:
        column_attribute(model, name, loc="values")
        if name in managed:
            raise ValidationError(
                f"{name!r} is maintained by keel or identifies the row; update_many cannot set it",
                errors=[{"loc": ["values", name], "msg": "not updatable", "type": "value_error"}],
            )
