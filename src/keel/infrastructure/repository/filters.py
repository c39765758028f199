"""Declarative filters: conditions an HTTP layer can build from query parameters.

A filter names a field and a value; it is checked against the model's
mapped columns (an unknown field is a :class:`ValidationError`) and its
value is converted to the column's Python type with pydantic's lax rules
(``"5"`` becomes ``5`` for an integer column, ``"2024-05-01"`` a date), so
bad input is a ``ValidationError`` naming the field, never a database error.
Values are always bound parameters; LIKE filters escape ``%`` and ``_``::

    await repo.list(Eq("status", "open"), Range("price", ge=10, lt=20), Like("name", "50%"))

:func:`filters_from_query` turns ``?status=open&price__gte=10&name__contains=lamp``
into such filters, limited to the fields you allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar, Literal

import pydantic
from sqlalchemy import ColumnElement, and_, inspect
from sqlalchemy.orm import InstrumentedAttribute

from keel.cross_cutting.error import ValidationError
from keel.infrastructure.database.values import storable_problem
from keel.infrastructure.repository._like import LIKE_ESCAPE, CaseSensitiveLike, escape_glob
from keel.infrastructure.repository._sorting import column_attribute

LikeMode = Literal["contains", "startswith", "endswith", "exact"]
_ESCAPE = LIKE_ESCAPE


class Filter:
    """Base of the declarative filters: a field plus a condition on it."""

    field: str
    operator: ClassVar[str]

    def to_expression(self, model: type[Any]) -> ColumnElement[bool]:
        """The SQL condition for ``model`` (values bound, never inlined)."""
        raise NotImplementedError

    def _attribute(self, model: type[Any]) -> InstrumentedAttribute[Any]:
        return column_attribute(model, self.field, loc="filter")

    def _coerce(self, model: type[Any], value: Any) -> Any:
        return coerce_value(model, self.field, value)


@dataclass(frozen=True, slots=True)
class Eq(Filter):
    """``field = value`` (``field IS NULL`` when value is None)."""

    field: str
    value: Any
    operator: ClassVar[str] = "eq"

    def to_expression(self, model: type[Any]) -> ColumnElement[bool]:
        attribute = self._attribute(model)
        if self.value is None:
            return attribute.is_(None)
        condition: ColumnElement[bool] = attribute == self._coerce(model, self.value)
        return condition


@dataclass(frozen=True, slots=True)
class Ne(Filter):
    """``field <> value``; rows where the field is NULL match too, as "not equal" suggests."""

    field: str
    value: Any
    operator: ClassVar[str] = "ne"

    def to_expression(self, model: type[Any]) -> ColumnElement[bool]:
        attribute = self._attribute(model)
        if self.value is None:
            return attribute.is_not(None)
        return attribute.is_distinct_from(self._coerce(model, self.value))


#: Most values one ``In`` filter takes. Each value is a bound parameter, and
#: drivers cap those (asyncpg at 32,767 per statement): a longer list from a
#: query string would be a database error instead of a ValidationError.
MAX_IN_VALUES = 1000


@dataclass(frozen=True, slots=True)
class In(Filter):
    """``field IN (values)``; ``negate=True`` for ``NOT IN`` (NULLs never match either).

    SQL's three-valued logic applies: with ``None`` among the values, a
    ``NOT IN`` matches no row at all. At most :attr:`max_values` values
    (set ``In.max_values`` to change the limit).
    """

    field: str
    values: Sequence[Any]
    negate: bool = False
    operator: ClassVar[str] = "in"
    max_values: ClassVar[int] = MAX_IN_VALUES

    def to_expression(self, model: type[Any]) -> ColumnElement[bool]:
        attribute = self._attribute(model)
        if isinstance(self.values, str | bytes) or not isinstance(self.values, Iterable):
            raise _invalid(self.field, "expected a list of values")
        raw = list(self.values)
        if len(raw) > self.max_values:
            raise _invalid(self.field, f"at most {self.max_values} values", maximum=self.max_values)
        values = [self._coerce(model, v) for v in raw]
        return attribute.not_in(values) if self.negate else attribute.in_(values)


@dataclass(frozen=True, slots=True)
class Range(Filter):
    """Bounds on ``field``: any of ``gt``, ``ge``, ``lt``, ``le``."""

    field: str
    gt: Any = None
    ge: Any = None
    lt: Any = None
    le: Any = None
    operator: ClassVar[str] = "range"

    def to_expression(self, model: type[Any]) -> ColumnElement[bool]:
        attribute = self._attribute(model)
        bounds = [(self.gt, attribute.__gt__), (self.ge, attribute.__ge__), (self.lt, attribute.__lt__)]
        bounds.append((self.le, attribute.__le__))
        parts = [compare(self._coerce(model, value)) for value, compare in bounds if value is not None]
        if not parts:
            raise _invalid(self.field, "a range needs at least one of gt, ge, lt, le")
        return and_(*parts)


@dataclass(frozen=True, slots=True)
class Like(Filter):
    """Text search; ``value`` is literal text (its ``%`` and ``_`` are escaped).

    ``case_sensitive=True`` (the default) holds on SQLite too, whose own
    ``LIKE`` ignores case: there it runs as ``GLOB``.
    """

    field: str
    value: str
    mode: LikeMode = "contains"
    case_sensitive: bool = True
    operator: ClassVar[str] = "like"

    def to_expression(self, model: type[Any]) -> ColumnElement[bool]:
        attribute = self._attribute(model)
        if not isinstance(self.value, str):
            raise _invalid(self.field, "expected text")
        if column_python_type(model, self.field) is not str:
            raise _invalid(self.field, "LIKE filters apply to text fields only")
        problem = storable_problem(None, self.value)
        if problem:
            raise _invalid(self.field, problem)
        shape = _LIKE_SHAPES.get(self.mode)
        if shape is None:
            raise _invalid(self.field, f"unknown LIKE mode {self.mode!r}")
        pattern = shape.format(escape_like(self.value), any="%")
        if self.case_sensitive:
            return CaseSensitiveLike(attribute, pattern, shape.format(escape_glob(self.value), any="*"))
        return attribute.ilike(pattern, escape=_ESCAPE)


#: Where the value sits in the pattern, per mode; ``{any}`` is the backend's "any text" wildcard.
_LIKE_SHAPES: dict[str, str] = {
    "contains": "{any}{0}{any}",
    "startswith": "{0}{any}",
    "endswith": "{any}{0}",
    "exact": "{0}",
}


@dataclass(frozen=True, slots=True)
class IsNull(Filter):
    """``field IS NULL`` (or ``IS NOT NULL`` with ``is_null=False``)."""

    field: str
    is_null: bool = True
    operator: ClassVar[str] = "isnull"

    def to_expression(self, model: type[Any]) -> ColumnElement[bool]:
        attribute = self._attribute(model)
        return attribute.is_(None) if self.is_null else attribute.is_not(None)


def escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards (and the escape character) escaped."""
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")


# --- values ----------------------------------------------------------------------


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
        raise _invalid(name, f"expected {python_type.__name__}")
    try:
        converted = type_adapter(python_type).validate_python(value)
    except (pydantic.ValidationError, TypeError) as exc:
        raise _invalid(name, f"expected {python_type.__name__}") from exc
    except pydantic.PydanticSchemaGenerationError:
        return value
    if isinstance(converted, datetime) and converted.utcoffset() is None:
        # keel stores aware UTC datetimes only; guessing a zone for a naive one would shift results.
        raise _invalid(name, "expected a datetime with a UTC offset (e.g. 2024-05-01T00:00:00Z)")
    problem = storable_problem(inspect(model).column_attrs[name].columns[0].type, converted)
    if problem:
        raise _invalid(name, problem)
    return converted


def _invalid(name: str, msg: str, **details: Any) -> ValidationError:
    return ValidationError(
        f"invalid filter on {name!r}: {msg}",
        errors=[{"loc": ["filter", name], "msg": msg, "type": "value_error"}],
        field=name,
        **details,
    )


# --- building conditions ------------------------------------------------------------


Condition = ColumnElement[bool] | Filter


def build_conditions(model: type[Any], where: Iterable[Condition], equals: Mapping[str, Any]) -> list[Any]:
    """SQL conditions from expressions, filter objects and ``field=value`` keywords."""
    conditions: list[Any] = []
    for item in where:
        if isinstance(item, Filter):
            conditions.append(item.to_expression(model))
        elif isinstance(item, ColumnElement) or hasattr(item, "__clause_element__"):
            conditions.append(item)
        else:
            raise ValidationError(
                f"not a condition: {type(item).__name__}",
                errors=[{"loc": ["filter"], "msg": "expected a SQL expression or a filter", "type": "type_error"}],
            )
    for name, value in equals.items():
        conditions.append(Eq(name, value).to_expression(model))
    return conditions


# --- from query parameters --------------------------------------------------------------

_SUFFIXES: dict[str, str] = {
    "": "eq",
    "eq": "eq",
    "ne": "ne",
    "in": "in",
    "not_in": "not_in",
    "gt": "gt",
    "gte": "ge",
    "ge": "ge",
    "lt": "lt",
    "lte": "le",
    "le": "le",
    "contains": "contains",
    "icontains": "icontains",
    "startswith": "startswith",
    "endswith": "endswith",
    "isnull": "isnull",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def filters_from_query(
    model: type[Any],
    params: Mapping[str, Any],
    *,
    allowed: Iterable[str] | None = None,
    ignore: Iterable[str] = ("page", "size", "cursor", "order_by", "sort"),
) -> list[Filter]:
    """Filters from query parameters such as ``price__gte=10`` or ``sku__in=a,b``.

    Suffixes: none/``eq``, ``ne``, ``in``, ``not_in`` (comma-separated),
    ``gt``, ``gte``, ``lt``, ``lte``, ``contains``, ``icontains``,
    ``startswith``, ``endswith``, ``isnull`` (``true``/``false``). A list
    value (a repeated parameter) means ``in`` (for ``in``/``not_in``, its
    items are the values; for the other suffixes, the last item counts).
    Values are text, numbers (a JSON body may carry them) or lists of them;
    anything else, and any value the column cannot hold, is a
    ValidationError naming the field, never a database error. Fields outside ``allowed``
    (default: every mapped column) are a ValidationError, so a client learns
    it misspelt a parameter instead of silently getting everything.
    """
    if not isinstance(params, Mapping):
        raise ValidationError(
            "query parameters must be a mapping of names to values",
            errors=[{"loc": ["query"], "msg": "expected a mapping", "type": "type_error"}],
        )
    allowed_names = set(allowed) if allowed is not None else set(inspect(model).column_attrs.keys())
    skipped = set(ignore)
    filters: list[Filter] = []
    for raw_name, raw_value in params.items():
        if raw_name in skipped:
            continue
        name, _, suffix = raw_name.partition("__") if isinstance(raw_name, str) else ("", "", "")
        operator = _SUFFIXES.get(suffix)
        if operator is None or name not in allowed_names:
            shown = str(raw_name)[:100]
            raise ValidationError(
                f"unknown filter {shown!r}",
                errors=[{"loc": ["query", shown], "msg": "unknown filter", "type": "unknown_field"}],
                allowed=sorted(allowed_names),
            )
        column_attribute(model, name, loc="filter")
        filters.append(_from_param(name, operator, raw_value))
    return filters


#: Value types a query parameter (or a JSON body standing in for one) may carry.
_SCALARS = (str, int, float)


def _from_param(name: str, operator: str, raw: Any) -> Filter:
    """One filter from a parameter's value: text, a number, or a list of them (a repeated parameter)."""
    if isinstance(raw, list | tuple):
        if not all(isinstance(item, _SCALARS) and not isinstance(item, bool) for item in raw):
            raise _invalid(name, "expected text, a number or a list of them")
        if operator in ("eq", "in", "not_in"):
            return In(name, list(raw), negate=operator == "not_in")
        if not raw:
            raise _invalid(name, "expected a value")
        raw = raw[-1]  # a repeated parameter: the last one wins, as in most web frameworks
    if operator == "isnull":
        if isinstance(raw, bool):
            return IsNull(name, raw)
        text = raw.strip().lower() if isinstance(raw, str) else None
        if text not in _TRUE | _FALSE:
            raise _invalid(name, "isnull takes true or false")
        return IsNull(name, text in _TRUE)
    if raw is not None and not (isinstance(raw, _SCALARS) and not isinstance(raw, bool)):
        raise _invalid(name, "expected text or a number")
    if operator in ("in", "not_in"):
        if not isinstance(raw, str):
            raise _invalid(name, "expected comma-separated values or a list")
        return In(name, raw.split(","), negate=operator == "not_in")
    if operator in ("contains", "icontains", "startswith", "endswith"):
        if not isinstance(raw, str):
            raise _invalid(name, "expected text")
        mode: LikeMode = "contains" if operator == "icontains" else operator  # type: ignore[assignment]
        return Like(name, raw, mode=mode, case_sensitive=operator != "icontains")
    if operator in ("gt", "ge", "lt", "le"):
        if raw is None:
            raise _invalid(name, "a range bound must not be null")
        return Range(name, **{operator: raw})
    if operator == "ne":
        return Ne(name, raw)
    return Eq(name, raw)
