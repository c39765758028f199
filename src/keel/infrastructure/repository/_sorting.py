"""Resolve ``order_by`` arguments against a model's mapped columns.

User strings are only ever looked up in the mapper; they never become SQL text.

Both repositories (SQL and in-memory) sort the same way: ``NULL`` counts as
greater than every value, so it comes last ascending and first descending.
That is PostgreSQL's default; SQLite's is the opposite, so keel always emits
``NULLS LAST`` / ``NULLS FIRST`` explicitly and the backends agree. It also
keeps a plain B-tree index usable for both directions on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, inspect
from sqlalchemy.orm import InstrumentedAttribute, Mapper
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from keel.cross_cutting.error import ValidationError

OrderBy = str | InstrumentedAttribute[Any] | ColumnElement[Any]
OrderByArg = OrderBy | Sequence[OrderBy] | None


@dataclass(frozen=True, slots=True)
class SortKey:
    """One column of an ordering: attribute name, direction, nullability."""

    name: str
    descending: bool = False
    nullable: bool = False

    @property
    def token(self) -> str:
        """``name`` or ``-name``: the stable text form (used in cursor fingerprints)."""
        return f"-{self.name}" if self.descending else self.name

    def reversed(self) -> SortKey:
        return SortKey(self.name, not self.descending, self.nullable)

    def clause(self, model: type[Any]) -> ColumnElement[Any]:
        """The ORDER BY clause, with the NULL placement spelled out when it matters."""
        attribute: InstrumentedAttribute[Any] = getattr(model, self.name)
        clause = attribute.desc() if self.descending else attribute.asc()
        if self.nullable:
            clause = clause.nulls_first() if self.descending else clause.nulls_last()
        return clause


def _unknown(model: type[Any], name: str, loc: str = "order_by") -> ValidationError:
    mapper = inspect(model)
    return ValidationError(
        f"unknown field {name!r} for {model.__name__}",
        errors=[{"loc": [loc, name], "msg": f"unknown field {name!r}", "type": "unknown_field"}],
        field=name,
        allowed=sorted(mapper.column_attrs.keys()),
    )


def column_attribute(model: type[Any], name: object, *, loc: str = "order_by") -> InstrumentedAttribute[Any]:
    """The mapped column attribute ``name`` of ``model``, or a ValidationError."""
    mapper = inspect(model)
    if isinstance(name, str) and name in mapper.column_attrs:
        attribute: InstrumentedAttribute[Any] = getattr(model, name)
        return attribute
    raise _unknown(model, str(name)[:100], loc)


def _is_nullable(mapper: Mapper[Any], name: str) -> bool:
    return any(getattr(column, "nullable", True) for column in mapper.column_attrs[name].columns)


def _key_of_attribute(mapper: Mapper[Any], element: Any) -> str | None:
    """The attribute name behind a mapped attribute or column, else None."""
    if isinstance(element, InstrumentedAttribute):
        return element.key if element.key in mapper.column_attrs and element.class_ is mapper.class_ else None
    annotations = getattr(element, "_annotations", {})
    if annotations.get("parentmapper") is mapper:
        try:
            key: str = mapper.get_property_by_column(element).key
        except Exception:  # noqa: BLE001 -- not one of the mapper's column attributes, however SQLAlchemy says so
            return None
        return key
    return None


def _as_sort_key(model: type[Any], item: object) -> SortKey | None:
    """A :class:`SortKey` for a name, attribute or ``attr.desc()``; None for other expressions."""
    mapper: Mapper[Any] = inspect(model)
    if isinstance(item, str):
        text = item.strip()
        descending = text.startswith("-")
        name = text.lstrip("-+")
        if not name:
            raise ValidationError(
                "empty sort field", errors=[{"loc": ["order_by"], "msg": "empty sort field", "type": "value_error"}]
            )
        column_attribute(model, name)
        return SortKey(name, descending, _is_nullable(mapper, name))
    descending = False
    element: Any = item
    if isinstance(item, UnaryExpression) and item.modifier in (operators.desc_op, operators.asc_op):
        descending = item.modifier is operators.desc_op
        element = item.element
    key = _key_of_attribute(mapper, element)
    if key is None:
        return None
    return SortKey(key, descending, _is_nullable(mapper, key))


def _items(order_by: OrderByArg) -> list[object]:
    if order_by is None:
        return []
    if isinstance(order_by, str | InstrumentedAttribute | ColumnElement):
        return [order_by]
    if isinstance(order_by, Sequence):
        return list(order_by)
    raise ValidationError(
        "order_by must be a field name, a mapped attribute or a list of them",
        errors=[{"loc": ["order_by"], "msg": "unsupported value", "type": "type_error"}],
    )


def sort_keys(model: type[Any], order_by: OrderByArg, *, tie_breaker: bool = True) -> list[SortKey]:
    """Resolve ``order_by`` into sort keys, the primary key appended as tie-breaker.

    The tie-breaker takes the direction of the last sort key.

    Only names and mapped attributes are accepted: keyset pagination and the
    in-memory twin need to know the column behind every sort key.
    """
    mapper: Mapper[Any] = inspect(model)
    keys: list[SortKey] = []
    for item in _items(order_by):
        key = _as_sort_key(model, item)
        if key is None:
            raise ValidationError(
                "only mapped columns can be sort keys here",
                errors=[{"loc": ["order_by"], "msg": "not a mapped column", "type": "value_error"}],
            )
        if all(k.name != key.name for k in keys):
            keys.append(key)
    if tie_breaker:
        keys.extend(_tie_breakers(mapper, keys))
    return keys


def _tie_breakers(mapper: Mapper[Any], keys: list[SortKey]) -> list[SortKey]:
    """The primary key columns the ordering lacks, in the direction of its last key.

    Following the last key's direction keeps ``-created_at`` a one-direction
    ordering, ``(created_at DESC, id DESC)``, which a plain ``(created_at, id)``
    index serves by scanning backward.
    """
    descending = keys[-1].descending if keys else False
    names = {k.name for k in keys}
    extra = []
    for column in mapper.primary_key:
        name = mapper.get_property_by_column(column).key
        if name not in names:
            extra.append(SortKey(name, descending, False))
    return extra


def resolve_order_by(model: type[Any], order_by: OrderByArg, *, tie_breaker: bool = False) -> list[ColumnElement[Any]]:
    """Turn ``"name"``, ``"-name"``, attributes and expressions into ORDER BY clauses.

    ``tie_breaker=True`` appends the primary key columns the ordering lacks
    (see :func:`sort_keys`).

    Names and mapped attributes get keel's NULL placement; any other SQL
    expression is passed through as given (it was written in code, not
    received from a user).
    """
    clauses: list[ColumnElement[Any]] = []
    named: list[SortKey] = []
    for item in _items(order_by):
        key = _as_sort_key(model, item)
        if key is not None:
            clauses.append(key.clause(model))
            named.append(key)
        elif isinstance(item, ColumnElement):
            clauses.append(item)
        else:
            raise _unknown(model, str(item)[:100])
    if tie_breaker:
        clauses.extend(k.clause(model) for k in _tie_breakers(inspect(model), named))
    return clauses
