"""The event store's statements, run on a synchronous ``Connection`` inside one greenlet hop.

Ordering (see docs/event-store.md): on PostgreSQL every append first takes
the append lock (a transaction-scoped advisory lock, see
:mod:`._postgresql`; readers never take it), so positions are handed out in
commit order and ``read_all`` can never see position N+1 while N is still
uncommitted. SQLite has one writer at a time by construction. Stream versions are claimed by compare-and-swap on
``keel_streams`` before any event row is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Insert, Row, Select, Text, Uuid, and_, any_, bindparam, cast, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keel.domain.streams import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion
from keel.infrastructure.event_store._postgresql import APPEND_LOCK_KEY
from keel.infrastructure.event_store.tables import events, snapshots, streams

_LOCK = f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})"
#: The event columns in table order, the JSON ones as text: asyncpg would otherwise parse
#: JSONB into dicts, and pydantic parses the text faster than ``json.loads`` and validation
#: of the dicts would (and one append's shared metadata is parsed once per read).
EVENT_COLUMNS = [cast(c, Text).label(c.name) if c.name in ("data", "metadata") else c for c in events.c]


def lock_for_append(conn: Connection) -> None:
    """Serialise appenders until this transaction ends (PostgreSQL; SQLite serialises writers itself)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_LOCK)


def _insert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (typed Any: the two dialects' classes share no base with it)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the event store does not support {name!r}")


def claim(conn: Connection, stream_id: str, count: int, expected: ExpectedVersion, now: datetime) -> int | None:
    """Advance the stream by ``count`` if it is as ``expected``; its previous version, or None on a mismatch."""
    if expected is ANY:
        statement = _insert(conn, streams).values(stream_id=stream_id, version=count, updated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[streams.c.stream_id],
            set_={"version": streams.c.version + count, "updated_at": now},
        ).returning(streams.c.version)
        return int(conn.execute(statement).scalar_one()) - count
    if expected is STREAM_EXISTS:
        row = conn.execute(
            update(streams)
            .where(streams.c.stream_id == stream_id)
            .values(version=streams.c.version + count, updated_at=now)
            .returning(streams.c.version)
        ).first()
        return None if row is None else int(row[0]) - count
    if expected is NO_STREAM or expected == 0:
        inserted = conn.execute(
            _insert(conn, streams)
            .values(stream_id=stream_id, version=count, updated_at=now)
            .on_conflict_do_nothing(index_elements=[streams.c.stream_id])
        )
        return 0 if inserted.rowcount == 1 else None
    assert isinstance(expected, int)
    changed = conn.execute(
        update(streams)
        .where(and_(streams.c.stream_id == stream_id, streams.c.version == expected))
        .values(version=expected + count, updated_at=now)
    )
    return expected if changed.rowcount == 1 else None


def current_versions(conn: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
    """Each existing stream's version (under the append lock on PostgreSQL)."""
    rows = conn.execute(select(streams.c.stream_id, streams.c.version).where(streams.c.stream_id.in_(stream_ids)))
    return {row[0]: int(row[1]) for row in rows}


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert event rows; their positions, in the rows' order."""
    result = conn.execute(insert_statement(), rows)
    return [int(p) for p in result.scalars().all()]


_INSERT_EVENTS = events.insert().returning(events.c.position, sort_by_parameter_order=True)


def insert_statement() -> Insert:
    return _INSERT_EVENTS


def existing_events(conn: Connection, event_ids: Iterable[UUID]) -> list[Row[Any]]:
    """The rows already holding these event ids, in position order."""
    ids = list(event_ids)
    if conn.dialect.name == "postgresql":
        # One array parameter, not one parameter per id (append_many checks thousands).
        condition = events.c.event_id == any_(bindparam("event_ids", ids, type_=postgresql.ARRAY(Uuid())))
    else:
        condition = events.c.event_id.in_(ids)
    return list(conn.execute(select(*EVENT_COLUMNS).where(condition).order_by(events.c.position)))


def stream_query(
    stream_id: str, from_version: int, to_version: int | None, backwards: bool, limit: int | None
) -> Select[Any]:
    query = select(*EVENT_COLUMNS).where(events.c.stream_id == stream_id, events.c.version >= from_version)
    if to_version is not None:
        query = query.where(events.c.version <= to_version)
    query = query.order_by(events.c.version.desc() if backwards else events.c.version)
    return query.limit(limit) if limit is not None else query


def all_query(after: int, limit: int | None, types: Sequence[str] | None) -> Select[Any]:
    query = select(*EVENT_COLUMNS).where(events.c.position > after)
    if types is not None:
        query = query.where(events.c.event_type.in_(types))
    query = query.order_by(events.c.position)
    return query.limit(limit) if limit is not None else query


def stream_version(conn: Connection, stream_id: str) -> int:
    version = conn.execute(select(streams.c.version).where(streams.c.stream_id == stream_id)).scalar()
    return int(version) if version is not None else 0


def save_snapshot(conn: Connection, values: dict[str, Any]) -> None:
    """Upsert the stream's snapshot unless a newer one is already stored."""
    statement = _insert(conn, snapshots).values(values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[snapshots.c.stream_id],
            set_={
                "version": statement.excluded.version,
                "schema_version": statement.excluded.schema_version,
                "state": statement.excluded.state,
                "taken_at": statement.excluded.taken_at,
            },
            where=snapshots.c.version <= statement.excluded.version,
        )
    )


def load_snapshot(conn: Connection, stream_id: str) -> Row[Any] | None:
    return conn.execute(select(snapshots).where(snapshots.c.stream_id == stream_id)).first()
