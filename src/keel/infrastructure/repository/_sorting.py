"""Resolve ``order_by`` arguments against a model's mapped columns.

User strings are only ever looked up in the mapper; they never become SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, inspect
from sqlalchemy.orm import InstrumentedAttribute

from keel.cross_cutting.error import ValidationError

OrderBy = str | InstrumentedAttribute[Any] | ColumnElement[Any]
OrderByArg = OrderBy | Sequence[OrderBy] | None


def column_attribute(model: type[Any], name: str) -> InstrumentedAttribute[Any]:
    """The mapped column attribute ``name`` of ``model``, or a ValidationError."""
    mapper = inspect(model)
    if name in mapper.column_attrs:
        attribute: InstrumentedAttribute[Any] = getattr(model, name)
        return attribute
    raise ValidationError(
        f"unknown field {name!r} for {model.__name__}",
        errors=[{"loc": ["order_by"], "msg": f"unknown field {name!r}", "type": "unknown_field"}],
        field=name,
        allowed=sorted(mapper.column_attrs.keys()),
    )


def resolve_order_by(model: type[Any], order_by: OrderByArg) -> list[ColumnElement[Any]]:
    """Turn ``"name"``, ``"-name"``, attributes and expressions into ORDER BY clauses."""
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str | InstrumentedAttribute | ColumnElement) else list(order_by)
    clauses: list[ColumnElement[Any]] = []
    for item in items:
        if isinstance(item, str):
            if not isinstance(item, str) or not item.strip("-+"):
                raise ValidationError(
                    "empty sort field", errors=[{"loc": ["order_by"], "msg": "empty", "type": "value_error"}]
                )
            descending = item.startswith("-")
            attribute = column_attribute(model, item.lstrip("-+"))
            clauses.append(attribute.desc() if descending else attribute.asc())
        else:
            clauses.append(item)  # type: ignore[arg-type]
    return clauses
