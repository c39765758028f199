"""Values for a column: converting filter input (lax) and checking values keel wrote (strict).

Filters take user input: ``"5"`` becomes ``5`` for an integer column and
``"2024-05-01"`` a date (pydantic's lax rules), and anything the column
cannot hold is a :class:`ValidationError` naming the field. Cursors carry
values keel encoded itself, so they are checked strictly instead: the right
type or nothing. Both ask the same questions of the column (its Python type,
whether the value is storable), answered here once.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pydantic
from sqlalchemy import inspect

from keel.cross_cutting.error import ValidationError
from keel.infrastructure.database.values import storable_problem
from keel.infrastructure.repository._sorting import column_attribute


def column_python_type(model: type[Any], name: str) -> type[Any] | None:
    """The Python type of column attribute ``name`` (None when the type does not say)."""
    column_type = inspect(model).column_attrs[name].columns[0].type
    # A TypeDecorator may not declare its Python type; its impl's is the one.
    candidates: list[Any] = [column_type, getattr(column_type, "impl_instance", None)]
    for candidate in candidates:
        try:
            python_type: type[Any] = candidate.python_type
        except (NotImplementedError, AttributeError):
            continue
        if python_type is not object:
            return python_type
    return None


@lru_cache(maxsize=256)
def type_adapter(python_type: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(python_type)


def coerce_value(model: type[Any], name: str, value: Any) -> Any:
    """``value`` converted to the column's Python type, or a ValidationError."""
    column_attribute(model, name, loc="filter")
    if value is None:
        return None
    python_type: Any = column_python_type(model, name)
    if python_type is None:
        return value
    if isinstance(value, bool) and python_type is not bool:
        # pydantic's lax mode reads True as 1; a boolean is never meant as a number.
        raise invalid_filter(name, f"expected {python_type.__name__}")
    try:
        converted = type_adapter(python_type).validate_python(value)
    except (pydantic.ValidationError, TypeError) as exc:
        raise invalid_filter(name, f"expected {python_type.__name__}") from exc
    except pydantic.PydanticSchemaGenerationError:
        return value
    if isinstance(converted, datetime) and converted.utcoffset() is None:
        # keel stores aware UTC datetimes only; guessing a zone for a naive one would shift results.
        raise invalid_filter(name, "expected a datetime with a UTC offset (e.g. 2024-05-01T00:00:00Z)")
    problem = storable_problem(inspect(model).column_attrs[name].columns[0].type, converted)
    if problem:
        raise invalid_filter(name, problem)
    return converted


def invalid_filter(name: str, msg: str, **details: Any) -> ValidationError:
    return ValidationError(
        f"invalid filter on {name!r}: {msg}",
        errors=[{"loc": ["filter", name], "msg": msg, "type": "value_error"}],
        field=name,
        **details,
    )


def strict_value(model: type[Any], name: str, value: Any, column_type: Any) -> Any:
    """``value`` if it already has column ``name``'s Python type (or the form keel encodes it in), else :data:`REFUSED`.

    The strict counterpart of :func:`coerce_value`, for values keel wrote
    itself (a cursor's sort values): a value of another form is refused
    rather than converted. Only a holder of the cursor secret can make one
    (the public development secret, say), but it must not reach the
    database as a type or range error, make the server build a huge number
    (``{"$dec": "1e999999999"}`` for an integer column) or break the
    in-memory twin's comparisons.
    """
    if value is None:
        return None
    python_type: Any = column_python_type(model, name)
    if python_type is None:
        return value
    converted = _exact(value, python_type)
    if converted is REFUSED:
        return REFUSED
    if isinstance(converted, datetime) and _is_aware_column(column_type) and converted.utcoffset() is None:
        return REFUSED
    # Lengths are not checked: SQLite stores longer text than String(n) says,
    # and a cursor must lead past such a row too.
    if storable_problem(column_type, converted, check_length=False):
        return REFUSED
    return converted


#: What :func:`strict_value` returns for a value it refuses.
REFUSED: Any = object()


def _exact(value: Any, python_type: Any) -> Any:
    """``value`` when it already has the column's type (or one keel encodes it as), else ``REFUSED``."""
    if python_type is float:
        return float(value) if type(value) in (int, float) else REFUSED
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        if isinstance(value, python_type):
            return value
        try:  # a str or int enum is encoded as its plain value
            return python_type(value) if isinstance(value, _PLAIN) and not isinstance(value, bool) else REFUSED
        except ValueError:
            return REFUSED
    if python_type is datetime or python_type is bool or python_type is int:
        # Exact types: a bool is no int here, a datetime no date.
        return value if type(value) is python_type else REFUSED
    if python_type is date:
        return value if type(value) is date else REFUSED
    if isinstance(python_type, type) and python_type in _KNOWN:
        return value if isinstance(value, python_type) else REFUSED
    try:  # a custom column type: its declared Python type decides
        return type_adapter(python_type).validate_python(value, strict=True)
    except (pydantic.ValidationError, pydantic.PydanticSchemaGenerationError, TypeError, ValueError):
        return REFUSED


_KNOWN = {str, time, timedelta, Decimal, uuid.UUID, bytes}
_PLAIN = (bool, int, str, float)


def _is_aware_column(column_type: Any) -> bool:
    impl = getattr(column_type, "impl_instance", column_type)
    return bool(getattr(impl, "timezone", False))
