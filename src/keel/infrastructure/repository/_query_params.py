"""``filters_from_query``: filters from query parameters (``?price__gte=10&sku__in=a,b``).

Names are looked up in the model's mapper and limited to the fields allowed;
values stay text until the filters coerce them, so nothing a client sends
becomes SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import inspect

from keel.cross_cutting.error import ValidationError
from keel.infrastructure.repository._coerce import invalid_filter as _invalid
from keel.infrastructure.repository._sorting import column_attribute
from keel.infrastructure.repository.filters import Eq, Filter, In, IsNull, Like, LikeMode, Ne, Range

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
#: The query-string operators that become a ``Like`` filter, and its mode.
_LIKE_MODES: dict[str, LikeMode] = {
    "contains": "contains",
    "icontains": "contains",
    "startswith": "startswith",
    "endswith": "endswith",
}


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
    mode = _LIKE_MODES.get(operator)
    if mode is not None:
        if not isinstance(raw, str):
            raise _invalid(name, "expected text")
        return Like(name, raw, mode=mode, case_sensitive=operator != "icontains")
    if operator in ("gt", "ge", "lt", "le"):
        if raw is None:
            raise _invalid(name, "a range bound must not be null")
        return Range(name, **{operator: raw})
    if operator == "ne":
        return Ne(name, raw)
    return Eq(name, raw)
