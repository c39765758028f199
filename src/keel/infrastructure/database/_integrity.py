"""Integrity errors (unique, check, not-null, foreign key) as keel's constraint errors.

PostgreSQL names the constraint, table and column in the error's fields;
SQLite only says "UNIQUE constraint failed: table.column" and the like. Both
are parsed into the same ``constraint``/``table``/``columns``, and what one
backend leaves out is looked up in the mapped tables' metadata (SQLite never
names a unique constraint; its name is found from the columns), so an
application sees the same error on either. Values are never copied: both
backends quote them in their messages.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Table, UniqueConstraint
from sqlalchemy import exc as sa_exc

from keel.cross_cutting.error import (
    CheckViolationError,
    ConflictError,
    ConstraintViolationError,
    ForeignKeyViolationError,
    NotNullViolationError,
)

#: SQLSTATE (class 23) -> error class; exclusion constraints refuse overlaps, a conflict too.
_BY_SQLSTATE: dict[str, type[ConstraintViolationError]] = {
    "23505": ConflictError,
    "23P01": ConflictError,
    "23514": CheckViolationError,
    "23502": NotNullViolationError,
    "23503": ForeignKeyViolationError,
    "23001": ForeignKeyViolationError,  # restrict_violation: a referenced row cannot go
}
_SQLITE_MESSAGE = re.compile(r"^(UNIQUE|CHECK|NOT NULL|FOREIGN KEY|PRIMARY KEY) constraint failed(?::\s*(.*))?$")
_SQLITE_KIND: dict[str, type[ConstraintViolationError]] = {
    "UNIQUE": ConflictError,
    "PRIMARY KEY": ConflictError,
    "CHECK": CheckViolationError,
    "NOT NULL": NotNullViolationError,
    "FOREIGN KEY": ForeignKeyViolationError,
}
#: PostgreSQL's detail: ``Key (a, b)=(1, 2) already exists.``; only the names before ``=`` are kept.
_KEY_DETAIL = re.compile(r"^Key \((.+?)\)=\(")
_SQLITE_INDEX = re.compile(r"^index '([^']+)'$")
_INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+\"?([\w.]+)\"?", re.IGNORECASE)


def constraint_error(exc: sa_exc.IntegrityError, code: str | None, **context: Any) -> ConstraintViolationError:
    """The keel error for an integrity error (``code``: its SQLSTATE, None on SQLite)."""
    if code is not None:
        cls = _BY_SQLSTATE.get(code, ConstraintViolationError)
        constraint = _field(exc, "constraint_name")
        table = _field(exc, "table_name")
        column = _field(exc, "column_name")
        detail = _field(exc, "detail") or _field(exc, "message_detail")  # asyncpg, psycopg
        columns = [column] if column else _detail_columns(detail)
    else:
        cls, constraint, table, columns = _parse_sqlite(str(exc.orig), exc.statement)
    found = _lookup(cls, constraint, table, columns)
    if found is not None:
        owner, item = found
        table = table or owner.name
        constraint = constraint or (str(item.name) if item.name else None)
        # The metadata's columns win: PostgreSQL's detail names the referenced columns on a
        # foreign key's delete, and spells an expression index's SQL, which SQLite never gives.
        if not isinstance(item, CheckConstraint):
            columns = [c.name for c in item.columns]
    if isinstance(constraint, str) and constraint.startswith("sqlite_autoindex"):
        constraint = None
    names = [str(c) for c in columns]
    error = cls(_message(cls, constraint, table, names), constraint=constraint, table=table, columns=names, **context)
    # The same keys on every backend, even where this one told nothing.
    error.details.update(constraint=constraint, table=table, columns=names)
    return error


def duplicate_key_error(table: Table, **context: Any) -> ConflictError:
    """What a primary-key violation on ``table`` is reported as (the in-memory twin raises it too)."""
    columns = [c.name for c in table.primary_key.columns]
    constraint = table.primary_key.name
    name = str(constraint) if constraint else None
    message = _message(ConflictError, name, table.name, columns)
    return ConflictError(message, constraint=name, table=table.name, columns=columns, **context)


def _message(cls: type[ConstraintViolationError], constraint: str | None, table: str | None, columns: list[str]) -> str:
    named = f" ({constraint})" if constraint else ""
    where = ", ".join(f"{table}.{c}" if table else c for c in columns)
    if cls is ConflictError:
        lead = f"a row with the same {where} already exists" if where else "the change conflicts with existing data"
    elif cls is NotNullViolationError:
        lead = f"{where} must have a value" if where else "a required value is missing"
    elif cls is CheckViolationError:
        lead = "a value breaks a check constraint"
    elif cls is ForeignKeyViolationError:
        lead = "a reference points at a missing row, or a row is still referenced"
    else:
        lead = "the change breaks a database constraint"
    return lead + named


def _field(exc: BaseException, name: str) -> str | None:
    """A diagnostic field of the driver's exception (asyncpg attributes, psycopg ``diag``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for holder in (current, getattr(current, "diag", None)):
            value = getattr(holder, name, None)
            if isinstance(value, str) and value:
                return value
        current = getattr(current, "orig", None) or current.__cause__
    return None


def _detail_columns(detail: str | None) -> list[str]:
    match = _KEY_DETAIL.match(detail or "")
    return [part.strip().strip('"') for part in match.group(1).split(",")] if match else []


def _parse_sqlite(
    message: str, statement: str | None
) -> tuple[type[ConstraintViolationError], str | None, str | None, list[str]]:
    match = _SQLITE_MESSAGE.match(message.strip())
    if match is None:
        return ConstraintViolationError, None, None, []
    cls = _SQLITE_KIND[match.group(1)]
    rest = (match.group(2) or "").strip()
    if cls is CheckViolationError or cls is ForeignKeyViolationError:
        inserted = _INSERT_INTO.match(statement or "")
        # SQLite names no table for a foreign key; on an INSERT it is the inserting table.
        table = inserted.group(1).rsplit(".", 1)[-1] if inserted and cls is ForeignKeyViolationError else None
        return cls, rest or None, table, []
    index = _SQLITE_INDEX.match(rest)
    if index is not None:  # a unique index on expressions: SQLite names the index only
        return cls, index.group(1), None, []
    qualified = [part.strip() for part in rest.split(",") if part.strip()]
    table = qualified[0].rsplit(".", 1)[0].rsplit(".", 1)[-1] if qualified and "." in qualified[0] else None
    return cls, None, table, [part.rsplit(".", 1)[-1] for part in qualified]


def _lookup(
    cls: type[ConstraintViolationError],
    constraint: str | None,
    table: str | None,
    columns: list[str],
) -> tuple[Table, Any] | None:
    """The mapped constraint (or unique index) the error is about and its table, when it can be told apart."""
    wanted = set(columns)
    any_of_table = not wanted and cls is ForeignKeyViolationError and table is not None
    candidates = []
    for tbl in _known_tables():
        if table is not None and tbl.name != table:
            continue
        for item in _constraints(tbl, cls):
            if constraint is not None:
                if constraint in _names(tbl, item):
                    return tbl, item
            elif any_of_table or (wanted and {c.name for c in item.columns} == wanted):
                candidates.append((tbl, item))
    return candidates[0] if len(candidates) == 1 else None


def _names(table: Table, item: Any) -> set[str]:
    """The names ``item`` may have in the database: its own, and as the naming convention renders it."""
    names = {str(item.name)} if item.name else set()
    convention = table.metadata.naming_convention.get("ck")
    if isinstance(item, CheckConstraint) and isinstance(convention, str) and item.name:
        # A convention with tokens a check cannot fill renders nothing here.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            names.add(convention % {"table_name": table.name, "constraint_name": item.name})
    return names


def _constraints(table: Table, cls: type[ConstraintViolationError]) -> Iterator[Any]:
    if cls is ConflictError:
        yield table.primary_key
        yield from (c for c in table.constraints if isinstance(c, UniqueConstraint))
        yield from (i for i in table.indexes if i.unique)
    elif cls is CheckViolationError:
        yield from (c for c in table.constraints if isinstance(c, CheckConstraint))
        # A check declared on a column stays on the column, not in the table's set.
        yield from (c for col in table.columns for c in col.constraints if isinstance(c, CheckConstraint))
    elif cls is ForeignKeyViolationError:
        yield from (c for c in table.constraints if isinstance(c, ForeignKeyConstraint))


def _known_tables() -> Iterator[Table]:
    """Every table of every mapped class, plus keel's own (only read on the error path)."""
    from keel.infrastructure.database.orm import keel_metadata

    # SQLAlchemy keeps no public list of registries; without the private one,
    # errors still carry what the backend said, only less filled in.
    try:
        from sqlalchemy.orm.mapper import _all_registries
    except ImportError:  # pragma: no cover - a SQLAlchemy that renamed it
        registries: Any = ()
    else:
        registries = _all_registries()
    seen: set[int] = set()
    for registry in list(registries):
        for mapper in list(registry.mappers):
            for table in mapper.tables:
                if id(table) not in seen and isinstance(table, Table):
                    seen.add(id(table))
                    yield table
    for table in keel_metadata.tables.values():
        if id(table) not in seen:
            yield table
