"""Keyset pagination: the WHERE clause after a boundary row, and page assembly.

Order semantics (shared with the in-memory twin): ``NULL`` is greater than
every value, so ascending puts NULLs last and descending first; the primary
key is always the last sort key, so every row has a unique position.

"Row r comes after boundary b" is then the lexicographic rule: for the first
sort key where r and b differ, r is further along in that key's direction.
Reading backward is reading forward in the reversed order, which is exactly
the reverse sequence because the NULL rule is direction-independent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, false, literal, or_, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from keel.infrastructure.repository._sorting import SortKey
from keel.infrastructure.repository.cursor import CursorState, decode_cursor, encode_cursor, fingerprint
from keel.infrastructure.repository.pages import CursorPage

T = TypeVar("T")


def _after(model: type[Any], key: SortKey, value: Any) -> ColumnElement[bool]:
    """Rows strictly further than ``value`` along ``key`` (NULL being the greatest)."""
    column: InstrumentedAttribute[Any] = getattr(model, key.name)
    if value is None:
        return column.is_not(None) if key.descending else false()
    bound = literal(value, column.type)
    further: ColumnElement[bool] = column < bound if key.descending else column > bound
    if key.nullable and not key.descending:
        return or_(further, column.is_(None))
    return further


def _equal(model: type[Any], key: SortKey, value: Any) -> ColumnElement[bool]:
    column: InstrumentedAttribute[Any] = getattr(model, key.name)
    if value is None:
        return column.is_(None)
    condition: ColumnElement[bool] = column == literal(value, column.type)
    return condition


def keyset_condition(model: type[Any], keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """The rows after the boundary ``values`` in the order ``keys``.

    With every key NOT NULL and one direction, this is a row-value
    comparison ``(a, b) > (:a, :b)``, which PostgreSQL answers with one index
    range scan. Otherwise it is the expanded form ``a > :a OR (a = :a AND
    b > :b) ...``, led by a redundant ``a >= :a`` so an index on the first
    key still bounds the scan.
    """
    directions = {k.descending for k in keys}
    if len(directions) == 1 and not any(k.nullable for k in keys) and None not in values:
        columns = tuple_(*(getattr(model, k.name) for k in keys))
        bounds = tuple_(*(literal(v, getattr(model, k.name).type) for k, v in zip(keys, values, strict=True)))
        return columns < bounds if keys[0].descending else columns > bounds
    branches = []
    for index, (key, value) in enumerate(zip(keys, values, strict=True)):
        prefix = [_equal(model, k, v) for k, v in zip(keys[:index], values[:index], strict=True)]
        branches.append(and_(*prefix, _after(model, key, value)))
    condition = or_(*branches)
    first, first_value = keys[0], values[0]
    if not first.nullable and first_value is not None:
        column = getattr(model, first.name)
        bound = literal(first_value, column.type)
        condition = and_(column <= bound if first.descending else column >= bound, condition)
    return condition


def compare(keys: Sequence[SortKey], left: Sequence[Any], right: Sequence[Any]) -> int:
    """-1, 0 or 1: where ``left`` sits relative to ``right`` in the order ``keys``."""
    for key, a, b in zip(keys, left, right, strict=True):
        if a == b:
            continue
        if a is None:
            result = 1
        elif b is None:
            result = -1
        else:
            result = 1 if a > b else -1
        return -result if key.descending else result
    return 0


@dataclass(frozen=True, slots=True)
class CursorPlan:
    """How to fetch one cursor page: the order to read in and the boundary to start after."""

    keys: list[SortKey]
    size: int
    fingerprint: str
    secret: bytes
    state: CursorState | None

    @property
    def backward(self) -> bool:
        return self.state is not None and self.state.backward

    @property
    def read_keys(self) -> list[SortKey]:
        """The order to query in: reversed when reading backward."""
        return [k.reversed() for k in self.keys] if self.backward else list(self.keys)

    @property
    def boundary(self) -> tuple[Any, ...] | None:
        return self.state.values if self.state is not None else None

    @property
    def fetch(self) -> int:
        """One row more than the page, to learn whether there is another page."""
        return self.size + 1

    def page(self, rows: Sequence[T], values_of: Callable[[T], tuple[Any, ...]]) -> CursorPage[T]:
        """Turn the fetched rows (read order, up to ``fetch``) into a page in display order."""
        more = len(rows) > self.size
        items = list(rows[: self.size])
        if self.backward:
            items.reverse()

        def cursor(row: T, backward: bool) -> str:
            return encode_cursor(CursorState(values_of(row), backward, self.fingerprint), self.secret, self.keys)

        if self.state is None:
            next_cursor = cursor(items[-1], False) if more and items else None
            previous_cursor = None
        elif not self.backward:
            next_cursor = cursor(items[-1], False) if more and items else None
            # Reached through a cursor, so something came before; an empty
            # page (rows vanished since) leads back from the old boundary.
            previous_cursor = cursor(items[0], True) if items else self._again(backward=True)
        else:
            previous_cursor = cursor(items[0], True) if more and items else None
            next_cursor = cursor(items[-1], False) if items else self._again(backward=False)
        return CursorPage(items, self.size, next_cursor, previous_cursor)

    def _again(self, *, backward: bool) -> str | None:
        if self.state is None:
            return None
        return encode_cursor(CursorState(self.state.values, backward, self.fingerprint), self.secret, self.keys)


def plan_cursor_page(
    model: type[Any],
    *,
    keys: list[SortKey],
    conditions: Sequence[Any],
    mode: str,
    cursor: str | None,
    size: int,
    secret: bytes,
) -> CursorPlan:
    """Check ``cursor`` against this query and say how to fetch the page."""
    digest = fingerprint(model, keys, conditions, mode)
    state = None
    if cursor is not None:
        state = decode_cursor(cursor, secret, fingerprint=digest, keys=keys, model=model)
    return CursorPlan(keys, size, digest, secret, state)
