"""The event store's tables on ``keel_metadata``: events, streams, snapshots, projection checkpoints.

``keel_events`` is append-only: on PostgreSQL and SQLite a trigger refuses
UPDATE and DELETE, so immutability does not depend on keel's code (TRUNCATE,
an administrator's tool, stays possible). The same DDL runs from
``create_all`` and from the ``keel_0003`` migration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Column,
    Integer,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from keel.infrastructure.database.orm import keel_metadata
from keel.infrastructure.database.types import UTCDateTime

#: Longest stream id, event type name or projection name.
STREAM_ID_LENGTH = 200
TYPE_NAME_LENGTH = 200

#: JSON everywhere, JSONB on PostgreSQL (smaller to index, faster to query).
JSON_DATA = JSON().with_variant(JSONB(), "postgresql")
#: 64-bit positions on PostgreSQL; INTEGER on SQLite, where only that spelling makes the rowid the key.
POSITION = BigInteger().with_variant(Integer(), "sqlite")


class JSONText(TypeDecorator[str]):
    """A JSON column (JSONB on PostgreSQL) read and written as JSON text, not as Python objects.

    Events are serialised once, by pydantic (``model_dump_json``), and parsed
    once, by pydantic (``model_validate_json``): going through dicts and the
    driver's ``json`` module would cost a second encode and decode per event.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        return _as_json_text

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        # Text from SQLite, and from PostgreSQL when selected with CAST(... AS text) as keel does;
        # a plain SELECT of the JSONB column on asyncpg gives the driver's parsed value.
        return None


def _as_json_text(value: Any) -> str | None:
    """Text passes through; other values (written by hand, say) are serialised."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


events = Table(
    "keel_events",
    keel_metadata,
    Column("position", POSITION, primary_key=True, autoincrement=True),
    Column("event_id", Uuid(), nullable=False, unique=True),
    Column("stream_id", String(STREAM_ID_LENGTH), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("event_type", String(TYPE_NAME_LENGTH), nullable=False),
    Column("schema_version", Integer(), nullable=False),
    Column("data", JSONText(), nullable=False),
    Column("metadata", JSONText(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    UniqueConstraint("stream_id", "version"),
    # AUTOINCREMENT: SQLite never hands out a position twice, even after the newest row went away.
    sqlite_autoincrement=True,
)

#: One row per stream: its current version, the row appends compare and swap.
streams = Table(
    "keel_streams",
    keel_metadata,
    Column("stream_id", String(STREAM_ID_LENGTH), primary_key=True),
    Column("version", Integer(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

#: The latest snapshot of a stream: a cache, safe to delete.
snapshots = Table(
    "keel_snapshots",
    keel_metadata,
    Column("stream_id", String(STREAM_ID_LENGTH), primary_key=True),
    Column("version", Integer(), nullable=False),
    Column("schema_version", Integer(), nullable=False),
    Column("state", JSON_DATA, nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
)

#: How far each projection has read ``keel_events`` (written in the projection's own transaction).
projection_checkpoints = Table(
    "keel_projection_checkpoints",
    keel_metadata,
    Column("name", String(STREAM_ID_LENGTH), primary_key=True),
    Column("position", BigInteger(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

#: The PostgreSQL channel notified (empty payload) when a transaction that appended events commits:
#: projection runners LISTEN on it instead of polling.
EVENTS_CHANNEL = "keel_events"

#: PostgreSQL: a trigger function refusing the change, and its row triggers; a statement
#: trigger notifying EVENTS_CHANNEL (delivered on commit, one per transaction however many rows).
POSTGRESQL_IMMUTABLE_EVENTS = [
    """CREATE OR REPLACE FUNCTION keel_events_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'keel_events is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql""",
    """CREATE TRIGGER keel_events_append_only BEFORE UPDATE OR DELETE ON keel_events
    FOR EACH ROW EXECUTE FUNCTION keel_events_refuse_change()""",
    """CREATE OR REPLACE FUNCTION keel_events_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('keel_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql""",
    """CREATE TRIGGER keel_events_appended AFTER INSERT ON keel_events
    FOR EACH STATEMENT EXECUTE FUNCTION keel_events_notify()""",
]
#: SQLite: the same refusal with RAISE(ABORT).
SQLITE_IMMUTABLE_EVENTS = [
    """CREATE TRIGGER keel_events_no_update BEFORE UPDATE ON keel_events
    BEGIN SELECT RAISE(ABORT, 'keel_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER keel_events_no_delete BEFORE DELETE ON keel_events
    BEGIN SELECT RAISE(ABORT, 'keel_events is append-only: DELETE refused'); END""",
]


def _ddl(statement: str, dialect: str) -> DDL:
    # DDL() %-formats its text (with the table's name): the trigger's own % is escaped.
    return DDL(statement.replace("%", "%%")).execute_if(dialect=dialect)  # type: ignore[no-untyped-call]


for _statement in POSTGRESQL_IMMUTABLE_EVENTS:
    event.listen(events, "after_create", _ddl(_statement, "postgresql"))
for _statement in SQLITE_IMMUTABLE_EVENTS:
    event.listen(events, "after_create", _ddl(_statement, "sqlite"))
for _function in ("keel_events_refuse_change", "keel_events_notify"):
    event.listen(events, "after_drop", _ddl(f"DROP FUNCTION IF EXISTS {_function}()", "postgresql"))
