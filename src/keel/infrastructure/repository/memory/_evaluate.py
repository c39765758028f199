"""Evaluate SQLAlchemy WHERE expressions against Python objects.

The in-memory repository accepts the same filters as the SQL one
(``Product.stock < 5``, ``Product.sku.in_([...])``, ``Product.name.like("a%")``,
keel's filter objects), so it needs to run them without a database. SQL's
three-valued logic is kept: a comparison with ``NULL`` is unknown (``None``),
and an unknown condition does not match.

SQLAlchemy ships a similar evaluator for ``synchronize_session="evaluate"``,
but it is private and has no LIKE; this one covers what keel's filters emit
and names anything else it cannot evaluate.
"""

from __future__ import annotations

import operator as op
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, inspect
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import (
    AsBoolean,
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ClauseList,
    ColumnElement,
    ExpressionClauseList,
    False_,
    Grouping,
    Null,
    True_,
    Tuple,
    UnaryExpression,
)

from keel.cross_cutting.error import ConfigurationError
from keel.infrastructure.repository._like import CaseSensitiveLike
from keel.infrastructure.repository._statements import check_statement
from keel.infrastructure.repository.soft_delete import INCLUDE_DELETED

Evaluator = Callable[[object], Any]

_COMPARISONS: dict[Any, Callable[[Any, Any], Any]] = {
    op.eq: op.eq,
    op.ne: op.ne,
    op.lt: op.lt,
    op.le: op.le,
    op.gt: op.gt,
    op.ge: op.ge,
    op.add: op.add,
    op.sub: op.sub,
    op.mul: op.mul,
    op.truediv: op.truediv,
    op.mod: op.mod,
}


class UnsupportedExpression(ConfigurationError):
    """The in-memory repository cannot evaluate this SQL expression."""


def compile_where(model: type[Any], clause: ColumnElement[Any]) -> Evaluator:
    """A function ``obj -> True | False | None`` equivalent to ``clause``."""
    return _Compiler(model).process(clause)


def matches(evaluator: Evaluator, obj: object) -> bool:
    """True only when the condition is true (not false, not unknown)."""
    return evaluator(obj) is True


def statement_where(model: type[Any], statement: object, *, shaped: bool) -> tuple[list[Any], bool]:
    """A ``select(model)`` statement's WHERE clause, and whether it sets ``include_deleted``.

    The twin evaluates one model's rows in Python: a join, another table
    in the FROM list, GROUP BY or HAVING is refused with a
    :class:`ConfigurationError` that points to the SQL-backed tests.
    """
    stmt: Select[Any] = check_statement(model, statement, shaped=shaped)
    mapper = inspect(model)
    froms = stmt.get_final_froms()
    if froms not in ([mapper.local_table], [mapper.selectable]) or stmt._group_by_clauses or stmt._having_criteria:
        raise UnsupportedExpression(
            f"the in-memory repository runs statements on {model.__name__} alone "
            "(select(Model).where(...) on its own columns): joins, other tables and GROUP BY "
            "need a database, so test this query with the SQLite/PostgreSQL fixtures"
        )
    where = [stmt.whereclause] if stmt.whereclause is not None else []
    return where, bool(stmt.get_execution_options().get(INCLUDE_DELETED, False))


class _Compiler:
    def __init__(self, model: type[Any]) -> None:
        self.model = model
        self.mapper = inspect(model)

    def process(self, clause: Any) -> Evaluator:
        if isinstance(clause, Grouping):
            return self.process(clause.element)
        if isinstance(clause, Null):
            return lambda obj: None
        if isinstance(clause, True_):
            return lambda obj: True
        if isinstance(clause, False_):
            return lambda obj: False
        if isinstance(clause, BindParameter):
            value = clause.effective_value
            return lambda obj: value
        if isinstance(clause, BooleanClauseList):
            return self._boolean(clause)
        if isinstance(clause, Tuple | ExpressionClauseList | ClauseList):
            parts = [self.process(c) for c in clause.clauses]
            return lambda obj: tuple(p(obj) for p in parts)
        if isinstance(clause, AsBoolean):  # ~boolean_expression, or a boolean used as a condition
            inner = self.process(clause.element)
            if clause.operator is operators.is_false:
                return lambda obj: _not(inner(obj))
            return inner
        if isinstance(clause, UnaryExpression) and clause.operator is operators.inv:
            inner = self.process(clause.element)
            return lambda obj: _not(inner(obj))
        if isinstance(clause, BinaryExpression):
            return self._binary(clause)
        if isinstance(clause, CaseSensitiveLike):
            return self.process(clause.like_clause)  # Python's matching is case-sensitive already
        annotations = getattr(clause, "_annotations", {})
        if annotations.get("parentmapper") is not None:
            return self._column(clause)
        if hasattr(clause, "__clause_element__"):
            element = clause.__clause_element__()
            if element is not clause:
                return self.process(element)
        raise self._unsupported(clause)

    def _column(self, clause: Any) -> Evaluator:
        mapper = clause._annotations["parentmapper"]
        if not issubclass(self.model, mapper.class_):
            raise self._unsupported(clause, f"it refers to another entity ({mapper.class_.__name__})")
        key = mapper.get_property_by_column(clause).key
        return lambda obj: getattr(obj, key, None)

    def _boolean(self, clause: BooleanClauseList) -> Evaluator:
        parts = [self.process(c) for c in clause.clauses]
        if clause.operator is operators.and_:
            return lambda obj: _and(p(obj) for p in parts)
        if clause.operator is operators.or_:
            return lambda obj: _or(p(obj) for p in parts)
        raise self._unsupported(clause)

    def _binary(self, clause: BinaryExpression[Any]) -> Evaluator:
        operator = clause.operator
        left, right = self.process(clause.left), self.process(clause.right)
        if operator in _COMPARISONS:
            function = _COMPARISONS[operator]
            if isinstance(clause.right, Tuple):
                return lambda obj: _null_safe(function, left(obj), right(obj), tuples=True)
            return lambda obj: _null_safe(function, left(obj), right(obj))
        if operator is operators.is_:
            return lambda obj: left(obj) == right(obj)
        if operator in (operators.is_not, operators.is_distinct_from):
            return lambda obj: left(obj) != right(obj)
        if operator is operators.is_not_distinct_from:
            return lambda obj: left(obj) == right(obj)
        if operator in (operators.in_op, operators.not_in_op):
            negate = operator is operators.not_in_op
            return lambda obj: _membership(left(obj), right(obj), negate)
        if operator is operators.between_op:
            return lambda obj: _between(left(obj), right(obj))
        like = _LIKE_OPERATORS.get(operator)
        if like is not None:
            shape, insensitive, negate = like
            escape = clause.modifiers.get("escape")
            return lambda obj: _like(left(obj), right(obj), shape, escape, insensitive, negate)
        raise self._unsupported(clause)

    def _unsupported(self, clause: Any, why: str = "") -> UnsupportedExpression:
        what = type(clause).__name__
        operator = getattr(clause, "operator", None)
        if operator is not None:
            what += f" with operator {getattr(operator, '__name__', operator)}"
        return UnsupportedExpression(
            f"the in-memory repository of {self.model.__name__} cannot evaluate {what}"
            + (f": {why}" if why else "")
            + "; use keel filter objects or simple comparisons, or test this query against SQLite",
            expression=str(clause),
        )


# (shape, case-insensitive, negated); shape wraps the value into a LIKE pattern.
_LIKE_OPERATORS: dict[Any, tuple[str, bool, bool]] = {
    operators.like_op: ("{}", False, False),
    operators.not_like_op: ("{}", False, True),
    operators.ilike_op: ("{}", True, False),
    operators.not_ilike_op: ("{}", True, True),
    operators.startswith_op: ("{}%", False, False),
    operators.not_startswith_op: ("{}%", False, True),
    operators.endswith_op: ("%{}", False, False),
    operators.not_endswith_op: ("%{}", False, True),
    operators.contains_op: ("%{}%", False, False),
    operators.not_contains_op: ("%{}%", False, True),
}


def _not(value: Any) -> Any:
    return None if value is None else not value


def _and(values: Any) -> bool | None:
    unknown = False
    for value in values:
        if value is None:
            unknown = True
        elif not value:
            return False
    return None if unknown else True


def _or(values: Any) -> bool | None:
    unknown = False
    for value in values:
        if value is None:
            unknown = True
        elif value:
            return True
    return None if unknown else False


def _null_safe(function: Callable[[Any, Any], Any], left: Any, right: Any, *, tuples: bool = False) -> Any:
    if left is None or right is None:
        return None
    if tuples and (None in left or None in right):
        return None
    return function(left, right)


def _membership(value: Any, options: Any, negate: bool) -> bool | None:
    # x IN (a, NULL) is true when x = a, else unknown (never false); NOT IN likewise.
    if value is None:
        return None
    options = tuple(options or ())
    if value in options:
        return not negate
    if any(option is None for option in options):
        return None
    return negate


def _between(value: Any, bounds: Any) -> bool | None:
    low, high = bounds
    if value is None or low is None or high is None:
        return None
    return bool(low <= value <= high)


def _like(value: Any, pattern: Any, shape: str, escape: str | None, insensitive: bool, negate: bool) -> bool | None:
    if value is None or pattern is None:
        return None
    # startswith()/contains() without autoescape still send the value as a
    # LIKE pattern, so its own % and _ stay wildcards here too, as in SQL.
    regex = _like_regex(shape.format(pattern), escape, insensitive)
    found = regex.fullmatch(str(value)) is not None
    return not found if negate else found


@lru_cache(maxsize=512)
def _like_regex(pattern: str, escape: str | None, insensitive: bool) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if escape is not None and char == escape:
            out.append(re.escape(next(chars, "")))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if insensitive else 0))
