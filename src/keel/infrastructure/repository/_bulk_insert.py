"""Sending ``insert_many``'s rows: one Core INSERT, keys reserved or read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

from keel.infrastructure.database._translate import translating
from keel.infrastructure.database.orm import model_traits


async def execute_insert(
    session: AsyncSession,
    model: type[Any],
    rows: list[dict[str, Any]],
    read_key: str | None,
    entities: Sequence[Any] = (),
) -> int:
    """INSERT ``rows`` into ``model``'s table; with ``read_key``, put the generated keys on ``entities``.

    A Core INSERT on the table: the ORM's per-row bulk bookkeeping buys
    nothing here, as the entities are not tracked. Pending ORM changes (a
    parent row, say) are flushed first, as an ORM statement would.
    """
    mapper = inspect(model)
    table: Any = mapper.local_table
    with translating(entity=model_traits(model).entity):
        await session.flush()
        if read_key is None:
            await session.execute(insert(table), rows)
            return len(rows)
        column = table.c[mapper.get_property(read_key).columns[0].key]
        keys = await reserve_keys(session, table, column, len(rows))
        if keys is not None:
            for row, key in zip(rows, keys, strict=True):
                row[column.key] = key
            await session.execute(insert(table), rows)
        else:
            result = await session.execute(insert(table).returning(column, sort_by_parameter_order=True), rows)
            keys = list(result.scalars().all())
    for entity, key in zip(entities, keys, strict=True):
        entity.__dict__[read_key] = key
    return len(keys)


async def reserve_keys(session: AsyncSession, table: Any, column: Any, count: int) -> list[Any] | None:
    """On PostgreSQL, take ``count`` values of the key's sequence in one query.

    Sending the keys with the rows spares the INSERT its ``RETURNING`` and the
    re-ordering SQLAlchemy needs to match returned keys to rows, which is what
    keeps ``insert_many`` level with a hand-written INSERT. Elsewhere (or
    without a sequence) None: read them back instead.
    """
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return None
    identity = getattr(column, "identity", None)
    if identity is not None and identity.always:
        return None  # GENERATED ALWAYS refuses explicit values: read the keys back instead
    sequence = await session.scalar(
        text("SELECT pg_get_serial_sequence(:table, :column)"),
        # The table name is parsed as SQL (case-folded unless quoted); the column is taken literally.
        {"table": bind.dialect.identifier_preparer.format_table(table), "column": column.name},
    )
    if sequence is None:
        return None
    # One array instead of `count` rows: decoding 100,000 result rows would
    # cost more than the INSERT saves.
    reserved = await session.scalar(
        text("SELECT array_agg(nextval(CAST(:sequence AS regclass))) FROM generate_series(1, :count)"),
        {"sequence": sequence, "count": count},
    )
    return list(reserved)
