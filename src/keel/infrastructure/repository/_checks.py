"""Argument checks shared by the SQL repository and its in-memory twin.

Both must refuse the same input with the same :class:`ValidationError`, so
the checks live here once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import pydantic
from sqlalchemy import inspect
from sqlalchemy.sql.elements import ClauseElement

from keel.cross_cutting.error import ValidationError
from keel.infrastructure.database.orm import ModelTraits, model_traits
from keel.infrastructure.database.values import MAX_BIGINT, storable_problem
from keel.infrastructure.repository._coerce import type_adapter
from keel.infrastructure.repository._sorting import column_attribute


def error(loc: str, msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": [loc], "msg": msg, "type": type_}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_limit(limit: int | None, offset: int | None) -> None:
    """``limit``/``offset``: integers in 0..2**63-1 (what every backend binds), or None."""
    for name, value in (("limit", limit), ("offset", offset)):
        if value is not None and (not _is_int(value) or not 0 <= value <= MAX_BIGINT):
            raise ValidationError(
                f"{name} must be an integer between 0 and {MAX_BIGINT}",
                errors=[error(name, f"must be an integer between 0 and {MAX_BIGINT}")],
                maximum=MAX_BIGINT,
            )


def check_page(page: object) -> int:
    if not _is_int(page) or not 1 <= page <= MAX_BIGINT:
        raise ValidationError(
            f"page must be an integer between 1 and {MAX_BIGINT}",
            errors=[error("page", f"must be an integer between 1 and {MAX_BIGINT}")],
            maximum=MAX_BIGINT,
        )
    return page


def check_size(size: object, *, default: int, maximum: int) -> int:
    """The page size: ``default`` when None; outside 1..``maximum`` is refused, never clamped."""
    if size is None:
        size = default
    if not _is_int(size) or not 1 <= size <= maximum:
        raise ValidationError(
            f"size must be an integer between 1 and {maximum}",
            errors=[error("size", f"must be an integer between 1 and {maximum}")],
            maximum=maximum,
        )
    return size


# --- primary keys ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KeyColumn:
    column_type: Any
    python_type: Any  # None: the type does not say, the value goes through as given


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """How to read an id for one model: its entity name and key columns (built once per model)."""

    entity: str
    columns: tuple[_KeyColumn, ...]


_KEY_PLANS: dict[type[Any], KeyPlan] = {}


def key_plan(model: type[Any]) -> KeyPlan:
    """The model's :class:`KeyPlan`, built on first use (every ``get`` needs it)."""
    plan = _KEY_PLANS.get(model)
    if plan is None:
        plan = _KEY_PLANS[model] = _build_key_plan(model)
    return plan


def _build_key_plan(model: type[Any]) -> KeyPlan:
    columns = []
    for column in inspect(model).primary_key:
        try:
            python_type: Any = column.type.python_type
        except NotImplementedError:
            python_type = None
        columns.append(_KeyColumn(column.type, python_type))
    return KeyPlan(model_traits(model).entity, tuple(columns))


#: An integer id as text: ASCII digits with an optional sign, nothing else
#: (``int()`` would also take ``" 5 "``, ``"5_000"`` and ``"²"``-like digits).
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,40}")


def coerce_identity(model: type[Any], id: Any) -> tuple[Any, ...]:
    """A primary key value as a tuple, parsed strictly against the key's column types.

    An integer key takes an ``int`` (not a ``bool``) or its decimal text
    (``"42"``, ``"-1"``); a float, even ``1.0``, is refused rather than
    truncated. A text key takes text (or an ``int``, as its decimal text).
    Anything that cannot be the key, or that the column cannot hold, is a
    :class:`ValidationError`; a well-formed id that matches no row is a miss.
    """
    plan = key_plan(model)
    columns = plan.columns
    if len(columns) == 1 and not isinstance(id, tuple):
        # The common case, kept free of generators: every get pays for it.
        return (_checked_key(columns[0], id, plan.entity),)
    values = id if isinstance(id, tuple) else (id,)
    if len(values) != len(columns):
        raise ValidationError(
            f"{plan.entity} has a {len(columns)}-column primary key",
            errors=[error("id", f"expected {len(columns)} values")],
        )
    return tuple(_checked_key(column, value, plan.entity) for column, value in zip(columns, values, strict=True))


def _checked_key(column: _KeyColumn, value: Any, entity: str) -> Any:
    key = _parse_key(column, value, entity)
    problem = storable_problem(column.column_type, key)
    if problem:
        raise ValidationError(f"{entity} id: {problem}", errors=[error("id", problem)])
    return key


def identity_list(ids: object) -> list[Any]:
    """``get_many``'s ids as a list: any iterable of ids except text (whose characters are not ids)."""
    if isinstance(ids, str | bytes | Mapping) or not isinstance(ids, Iterable):
        raise ValidationError("ids must be a list of ids", errors=[error("ids", "expected a list of ids")])
    return list(ids)


def _parse_key(column: _KeyColumn, value: Any, entity: str) -> Any:
    expected = column.python_type
    if value is None:
        raise ValidationError(f"{entity} id must not be None", errors=[error("id", "must not be None")])
    if expected is None:
        return value
    if isinstance(value, bool) and expected is not bool:
        raise _not_a_key(entity, value, expected)
    if expected is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            return int(value)
        raise _not_a_key(entity, value, expected)
    if isinstance(value, expected):
        return value
    if expected is str:
        if isinstance(value, int):
            return str(value)
        raise _not_a_key(entity, value, expected)
    if isinstance(value, float):
        raise _not_a_key(entity, value, expected)
    try:
        return type_adapter(expected).validate_python(value)
    except (pydantic.ValidationError, pydantic.PydanticSchemaGenerationError, TypeError, ValueError):
        raise _not_a_key(entity, value, expected) from None


def _not_a_key(entity: str, value: Any, expected: type[Any]) -> ValidationError:
    shown = value if isinstance(value, int | float) else str(value)[:100]
    return ValidationError(
        f"{entity} id {shown!r} is not a valid {expected.__name__}",
        errors=[error("id", f"expected {expected.__name__}")],
    )


def check_update_values(model: type[Any], traits: ModelTraits, values: Mapping[str, Any]) -> None:
    """``update_many`` may set ordinary columns only: keel maintains the others."""
    if not values:
        raise ValidationError("values must not be empty", errors=[error("values", "must not be empty")])
    managed = {traits.version, traits.created_at, traits.updated_at, traits.deleted_at, *traits.primary_key} - {None}
    for name, value in values.items():
        attribute = column_attribute(model, name, loc="values")
        if name in managed:
            raise ValidationError(
                f"{name!r} is maintained by keel or identifies the row; update_many cannot set it",
                errors=[{"loc": ["values", name], "msg": "not updatable", "type": "value_error"}],
            )
        problem = None if isinstance(value, ClauseElement) else storable_problem(attribute.type, value)
        if problem:
            raise ValidationError(
                f"invalid value for {name!r}: {problem}",
                errors=[{"loc": ["values", name], "msg": problem, "type": "value_error"}],
                field=name,
            )
