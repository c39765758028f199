"""Which unique constraint backs a ``get_or_create``/``upsert`` key, shared by the SQL repository and its twin.

``INSERT ... ON CONFLICT`` is only safe under concurrency when the database
enforces the key: without a primary key, unique constraint or unique index on
exactly those columns, two racing creators would both insert. So the key's
columns are checked against the table's metadata before any SQL, and a key
nothing enforces is a :class:`ConfigurationError`, on the twin too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, UniqueConstraint, inspect

from keel.cross_cutting.error import ConfigurationError, ConflictError
from keel.infrastructure.repository._sorting import column_attribute


@dataclass(frozen=True, slots=True)
class UniqueKey:
    """A unique rule over some columns: their attribute names, and the WHERE of a partial index."""

    attributes: tuple[str, ...]
    columns: tuple[Any, ...]
    #: The index predicate per dialect name (``postgresql``/``sqlite``), for a partial unique index.
    where: dict[str, Any]

    def index_where(self, dialect: str) -> Any:
        """The predicate ``ON CONFLICT`` must repeat to match a partial index on ``dialect``, or None."""
        return self.where.get(dialect)


def unique_key(model: type[Any], names: Iterable[str], *, loc: str) -> UniqueKey:
    """The unique rule over exactly the columns ``names`` (attribute names), or a ConfigurationError."""
    attributes = tuple(dict.fromkeys(names))
    mapper = inspect(model)
    columns = tuple(column_attribute(model, name, loc=loc).property.columns[0] for name in attributes)
    wanted = frozenset(columns)
    for table in mapper.tables:
        if wanted == frozenset(table.primary_key.columns):
            return UniqueKey(attributes, columns, {})
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint) and wanted == frozenset(constraint.columns):
                return UniqueKey(attributes, columns, {})
        for index in table.indexes:
            if isinstance(index, Index) and index.unique and wanted == frozenset(index.columns):
                where = {d: index.dialect_kwargs.get(f"{d}_where") for d in ("postgresql", "sqlite")}
                return UniqueKey(attributes, columns, {d: w for d, w in where.items() if w is not None})
    entity = mapper.class_.__name__
    raise ConfigurationError(
        f"{entity} has no primary key, unique constraint or unique index on ({', '.join(attributes)}): "
        "get_or_create and upsert need one, or two concurrent callers would both insert",
        entity=entity,
    )


def hidden_conflict(entity: str, unique: UniqueKey) -> ConflictError:
    """The error for a key held by a soft-deleted row that ``get_or_create`` will not bring back."""
    return ConflictError(
        f"a soft-deleted {entity} holds this ({', '.join(unique.attributes)}): restore it "
        "(get(..., include_deleted=True) then restore()) or make the unique index partial over live rows",
        entity=entity,
    )
