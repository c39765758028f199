"""``get_many``'s WHERE clauses: any number of keys, within every driver's parameter limit.

asyncpg takes at most 32,767 bound parameters per statement and SQLite
32,766 (999 before 3.32), so ``IN`` with one parameter per id breaks at some
tens of thousands of ids. On PostgreSQL a one-column key is sent as a single
array parameter (``key = ANY($1)``), which also keeps one cached statement
for every list length; elsewhere, and for composite keys, the ids go out in
chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, any_, literal, tuple_
from sqlalchemy.dialects import postgresql

#: Bound values per statement when chunking: below SQLite's historical limit
#: of 999, leaving room for parameters other criteria may add.
KEYS_PER_STATEMENT = 900


def key_conditions(
    model: type[Any], primary_key: Sequence[str], keys: Sequence[tuple[Any, ...]], dialect: str
) -> Iterator[ColumnElement[bool]]:
    """Conditions that together select the rows with these (coerced, distinct) keys."""
    columns = [getattr(model, name) for name in primary_key]
    if len(columns) == 1:
        column = columns[0]
        values = [k[0] for k in keys]
        if dialect == "postgresql":
            yield column == any_(literal(values, postgresql.ARRAY(column.type)))
            return
        for start in range(0, len(values), KEYS_PER_STATEMENT):
            yield column.in_(values[start : start + KEYS_PER_STATEMENT])
        return
    step = max(1, KEYS_PER_STATEMENT // len(columns))
    for start in range(0, len(keys), step):
        yield tuple_(*columns).in_(keys[start : start + step])
