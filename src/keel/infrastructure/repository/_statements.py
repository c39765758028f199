"""User-built statements: what ``statement=`` accepts on ``list``, ``count`` and the pages.

A custom query (a join, a subquery, a ``GROUP BY``) is written as a
``select(Model)...``; keel adds its own rules to it (soft delete, filters,
sorting, the tie-breaker, keyset cursors). So it must select the model and
nothing else, and leave the ordering and the limits to keel: a statement's
own ``ORDER BY`` would come before the cursor's keys and break keyset paging,
and its ``LIMIT`` would make the page total wrong.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from keel.cross_cutting.error import ConfigurationError


def check_statement(model: type[Any], statement: object, *, shaped: bool) -> Select[Any]:
    """``statement`` if it is a ``select(model)``; with ``shaped=False``, also without ORDER BY/LIMIT/OFFSET."""
    if not isinstance(statement, Select):
        raise ConfigurationError(
            f"statement= takes a select({model.__name__}) statement, not {type(statement).__name__}"
        )
    described = statement.column_descriptions
    if len(described) != 1 or described[0].get("expr") is not model:
        shown = ", ".join(str(d.get("name")) for d in described)
        raise ConfigurationError(
            f"statement= must select {model.__name__} entities only (select({model.__name__})...), not: {shown}"
        )
    if not shaped and has_shape(statement):
        raise ConfigurationError(
            "a statement= for list, count, paginate or paginate_by_cursor must not have ORDER BY, LIMIT or OFFSET: "
            "pass order_by=, limit=, offset= or the page arguments instead"
        )
    return statement


def has_shape(statement: Select[Any]) -> bool:
    """Whether ``statement`` orders or limits its rows itself."""
    # No public accessor exists for these; they are stable attributes of Select in SQLAlchemy 2.
    return (
        bool(statement._order_by_clauses)
        or statement._limit_clause is not None
        or (statement._offset_clause is not None)
    )
