"""What a column can hold: value checks run before anything reaches SQL.

One rule for every backend. PostgreSQL refuses an ``int4`` beyond 2**31, a
``numeric(8,2)`` of 1e20, a ``varchar(5)`` of ten characters and any NUL
character; SQLite stores all of them (or overflows at 2**63 in the driver).
Checking against the column type first makes such input a
:class:`ValidationError` naming the column, identically on SQLite, PostgreSQL
and the in-memory twin, instead of a 500 on one backend and silent acceptance
on another.

Used by the repository's filters, ids, cursors, ``limit``/``offset`` and
``update_many``, and, through a ``before_flush`` listener, by every flush of
new or changed entities.
"""

from __future__ import annotations

import decimal
import sys
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Enum, Float, Integer, Numeric, SmallInteger, String
from sqlalchemy.orm import Mapper, Session, UOWTransaction
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql.elements import ClauseElement

from keel.cross_cutting.error import ValidationError
from keel.infrastructure.database._keel_session import is_keel_session

#: The largest integer every backend binds (PostgreSQL ``bigint``, SQLite's int64).
MAX_BIGINT = 2**63 - 1

#: Integer ranges every backend stores (PostgreSQL's int2/int4/int8); most specific first.
_INTEGER_BOUNDS: list[tuple[type[Any], int]] = [(SmallInteger, 2**15), (BigInteger, 2**63), (Integer, 2**31)]


_NUMERIC_DIGITS = 131072
_NUMERIC_FRACTION_DIGITS = 16383


def _impl(column_type: Any) -> Any:
    """The type that decides storage: a TypeDecorator's implementation, else the type itself."""
    return getattr(column_type, "impl_instance", column_type)


def storable_problem(column_type: Any, value: Any, *, check_length: bool = True) -> str | None:
    """Why a database would refuse ``value`` for ``column_type`` (None when it would not).

    Integers beyond the column's range (int16/int32/int64 for
    ``SmallInteger``/``Integer``/``BigInteger``), numbers with more digits
    before the point than ``Numeric(p, s)`` holds (after rounding to ``s``
    places, as PostgreSQL does) or not finite, text longer than ``String(n)``
    (skipped with ``check_length=False``), with NUL characters (PostgreSQL
    refuses them) or unpaired surrogates (not UTF-8), and aware datetimes
    that leave years 1..9999 once converted to UTC (keel stores UTC).
    """
    if value is None or isinstance(value, bool):
        return None
    impl = _impl(column_type)
    if isinstance(value, datetime):
        if value.utcoffset() is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                return "datetime out of range once converted to UTC"
        return None
    if isinstance(value, int | float | Decimal):
        return _number_problem(impl, value)
    if isinstance(value, str):
        return _text_problem(impl, value, check_length=check_length)
    return None


def _integer_bound(impl: Any) -> tuple[type[Any], int] | None:
    """(the most specific integer type, its bound) of an integer column type, else None."""
    if isinstance(impl, Integer):
        for kind, bound in _INTEGER_BOUNDS:
            if isinstance(impl, kind):
                return kind, bound
    return None


def _number_problem(impl: Any, value: int | float | Decimal) -> str | None:
    if isinstance(value, int):
        integer = _integer_bound(impl)
        if integer is not None:
            kind, bound = integer
            return None if -bound <= value < bound else f"integer out of range for {kind.__name__}"
    if isinstance(impl, Numeric) and not isinstance(impl, Float):
        return _numeric_problem(impl, value)
    return None


def _numeric_problem(impl: Numeric[Any], value: int | float | Decimal) -> str | None:
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (ValueError, OverflowError, decimal.InvalidOperation):
        return "not a number"
    if not number.is_finite():
        return "number must be finite"
    precision, scale = impl.precision, impl.scale or 0
    if precision is None:
        # PostgreSQL's unconstrained numeric: 131,072 digits before the point, 16,383 after.
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        if number and (exponent < -_NUMERIC_FRACTION_DIGITS or number.adjusted() >= _NUMERIC_DIGITS):
            return "number out of range"
        return None
    digits = precision - scale
    too_big = f"number out of range for Numeric({precision}, {scale}): at most {digits} digits before the point"
    if number and number.adjusted() >= digits:
        return too_big
    # Rounding to the scale can carry into one more digit (999999.996 -> 1000000.00).
    with decimal.localcontext() as context:
        context.prec = precision + 2
        rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_EVEN)
    return too_big if rounded and rounded.adjusted() >= digits else None


def _text_problem(impl: Any, value: str, *, check_length: bool) -> str | None:
    if "\x00" in value:
        return "text must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode"
    length = getattr(impl, "length", None) if isinstance(impl, String) and not isinstance(impl, Enum) else None
    if check_length and length is not None and len(value) > length:
        return f"text longer than {length} characters"
    return None


# --- entities at flush time -----------------------------------------------------------


@cache
def _checked_columns(mapper: Mapper[Any]) -> tuple[tuple[str, str, Any, int | None, int | None], ...]:
    """(attribute, column name, column type, integer bound, text limit) of the columns whose values need a check.

    The bound (integer columns) and the limit (text columns: their length, or
    no limit) let the flush pass a plain ``int`` or ASCII ``str``, the
    commonest values, without going through :func:`storable_problem`.
    """
    checked = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        impl = _impl(column.type)
        if isinstance(impl, Integer | Numeric | String) or _python_type(column.type) is datetime:
            integer = _integer_bound(impl)
            text = isinstance(impl, String) and not isinstance(impl, Enum)
            limit = (impl.length or sys.maxsize) if text else None
            checked.append((prop.key, str(column.name), column.type, integer[1] if integer else None, limit))
    return tuple(checked)


def _python_type(column_type: Any) -> Any:
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


def check_entity_values(entity: object, *, changed_only: bool) -> None:
    """Raise :class:`ValidationError` naming the first column ``entity`` holds an unstorable value for."""
    _check_state_values(instance_state(entity), changed_only=changed_only)


def _check_state_values(state: InstanceState[Any], *, changed_only: bool) -> None:
    values = state.dict
    keys = state.committed_state if changed_only else values
    for key, name, column_type, bound, limit in _checked_columns(state.mapper):
        if key not in keys:
            continue
        value = values.get(key)
        if value is None:
            continue
        # The common cases, decided as storable_problem would (ASCII is always valid UTF-8).
        if bound is not None:
            if type(value) is int and -bound <= value < bound:
                continue
        elif (
            limit is not None and type(value) is str and len(value) <= limit and value.isascii() and "\x00" not in value
        ):
            continue
        if isinstance(value, ClauseElement):
            continue
        problem = storable_problem(column_type, value)
        if problem:
            entity_name = state.class_.__name__
            raise ValidationError(
                f"{entity_name}.{key}: {problem}",
                errors=[{"loc": [entity_name, key], "msg": problem, "type": "value_error"}],
                entity=entity_name,
                field=key,
                column=name,
            )


def check_flushed_values(session: Session, _flush_context: UOWTransaction, _instances: Any) -> None:
    """``before_flush`` (see ``database.listeners``): check new and changed values against their columns."""
    if not is_keel_session(session):
        return
    # Before any SQL, so a value one backend would refuse (and another would
    # store) fails alike everywhere, with the column named, and the session
    # stays usable. The session's own pending and modified states, rather than
    # ``session.new`` and ``session.dirty``, which build an identity set each per flush.
    for state in session._new:
        _check_state_values(state, changed_only=False)
    deleted = session._deleted
    for state in session.identity_map._modified:
        if state not in deleted:
            _check_state_values(state, changed_only=True)
