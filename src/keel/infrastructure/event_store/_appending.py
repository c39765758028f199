"""The event store's writes and decoding: rows from events, the append logic on one connection, records.

Functions of :class:`keel.infrastructure.event_store._store.SqlAlchemyEventStore`,
kept apart so the store's module holds its public surface and transactions.
On PostgreSQL an append is one statement (:mod:`._postgresql`); on SQLite it
is a compare-and-swap on the stream's row and an insert (:mod:`._sql`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection

from keel.cross_cutting.error import ConcurrencyError, ConflictError
from keel.domain.messages import DomainEvent, utcnow
from keel.domain.streams import ANY, STREAM_EXISTS, ExpectedVersion, RecordedEvent
from keel.infrastructure.event_store import _checks, _postgresql, _sql
from keel.infrastructure.event_store._types import EventTypes, schema_version_of
from keel.infrastructure.message_metadata import current_metadata

#: event class -> (stored type name, schema version).
_STORED_AS: dict[type[DomainEvent], tuple[str, int]] = {}


def encode(
    stream_id: str,
    batch: list[DomainEvent],
    metadata: Mapping[str, Any] | None,
    limit: int,
    merged: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows to insert (versions filled in later) and the metadata written with them.

    ``merged`` is the metadata already merged with the task's (``append_many`` merges once).
    """
    if merged is None:
        merged = {**current_metadata(), **(metadata or {})}
    now = utcnow()
    metadata_json = json.dumps(merged)
    rows = []
    for event in batch:
        cls = type(event)
        stored_as = _STORED_AS.get(cls)
        if stored_as is None:
            # Looked up once per class: a missing attribute on a pydantic class is slow to find.
            stored_as = _STORED_AS[cls] = (cls.message_type, schema_version_of(cls))
        data = event.model_dump_json()
        if len(data) > limit:
            _checks.check_size(event, len(data), limit)
        rows.append(
            {
                "event_id": event.event_id,
                "stream_id": stream_id,
                "event_type": stored_as[0],
                "schema_version": stored_as[1],
                "data": data,
                "metadata": metadata_json,
                "recorded_at": now,
            }
        )
    return rows, merged


def append(
    conn: Connection,
    stream_id: str,
    batch: list[DomainEvent],
    rows: list[dict[str, Any]],
    metadata: dict[str, Any],
    expected: ExpectedVersion,
) -> list[RecordedEvent]:
    # Idempotency is checked before the claim when the claim itself cannot fail
    # (ANY, STREAM_EXISTS on an existing stream): a failed insert would abort the
    # transaction on PostgreSQL, too late to answer "already recorded". On SQLite it
    # is checked first whatever the expectation: a failed insert there leaves the
    # claim standing in the transaction (PostgreSQL's aborted transaction cannot commit).
    if expected is ANY or expected is STREAM_EXISTS or conn.dialect.name == "sqlite":
        done = _already_recorded(conn, stream_id, batch, expected, metadata)
        if done is not None:
            return done
    if conn.dialect.name == "postgresql":
        drawn = _postgresql.append(conn, stream_id, rows, rows[0]["metadata"], expected, rows[0]["recorded_at"])
        if drawn is None:
            return _refused(conn, stream_id, batch, expected, metadata)
        for row, (_, version) in zip(rows, drawn, strict=True):
            row["version"] = version
        return _records(batch, rows, [position for position, _ in drawn], metadata)
    previous = _sql.claim(conn, stream_id, len(batch), expected, rows[0]["recorded_at"])
    if previous is None:
        return _refused(conn, stream_id, batch, expected, metadata)
    for offset, row in enumerate(rows, start=1):
        row["version"] = previous + offset
    positions = _sql.insert_events(conn, rows)
    return _records(batch, rows, positions, metadata)


def _refused(
    conn: Connection,
    stream_id: str,
    batch: list[DomainEvent],
    expected: ExpectedVersion,
    metadata: dict[str, Any],
) -> list[RecordedEvent]:
    """The claim failed: the records if this batch is already there (a repeat), else the conflict."""
    done = _already_recorded(conn, stream_id, batch, expected, metadata)
    if done is not None:
        return done
    raise _conflict(conn, stream_id, expected)


def append_many(
    conn: Connection,
    plan: list[tuple[str, list[DomainEvent], ExpectedVersion]],
    rows: list[dict[str, Any]],
    metadata: dict[str, Any],
) -> list[RecordedEvent]:
    # A batch is not idempotent as a single append is: a recorded event id is a
    # ConflictError. PostgreSQL's unique constraint says so and aborts the transaction;
    # SQLite's failed insert would leave the claimed versions in it, so it checks first.
    if conn.dialect.name == "sqlite":
        taken = _sql.existing_events(conn, (row["event_id"] for row in rows))
        if taken:
            raise _already_used(taken[0].event_id, taken[0].stream_id)
    _sql.lock_for_append(conn)
    now = rows[0]["recorded_at"]
    if conn.dialect.name == "sqlite":
        # Claim stream by stream: SQLite's first write takes the database's write
        # lock, so the versions read afterwards cannot change under us.
        previous = {}
        for stream_id, batch, expected in plan:
            found = _sql.claim(conn, stream_id, len(batch), expected, now)
            if found is None:
                raise _conflict(conn, stream_id, expected)
            previous[stream_id] = found
    else:
        # Under the append lock no other writer can move a stream: read every version
        # in one statement, check them here, write them back in one statement.
        current = _sql.current_versions(conn, [stream_id for stream_id, _, _ in plan])
        previous = {}
        for stream_id, _batch, expected in plan:
            version = current.get(stream_id, 0)
            if not _matches(version, expected, stream_id in current):
                raise _conflict(conn, stream_id, expected, version)
            previous[stream_id] = version
        _postgresql.set_versions(conn, {s: previous[s] + len(b) for s, b, _ in plan}, now)
    index = 0
    for stream_id, batch, _ in plan:
        for offset in range(1, len(batch) + 1):
            rows[index]["version"] = previous[stream_id] + offset
            index += 1
    if conn.dialect.name == "postgresql":
        positions = _postgresql.insert_many(conn, rows, rows[0]["metadata"], now)
    else:
        positions = _sql.insert_events(conn, rows)
    return _records([e for _, batch, _ in plan for e in batch], rows, positions, metadata)


def _already_recorded(
    conn: Connection,
    stream_id: str,
    batch: list[DomainEvent],
    expected: ExpectedVersion,
    metadata: dict[str, Any],
) -> list[RecordedEvent] | None:
    """The records of ``batch`` if it is already in the stream as asked, None if none of it is there."""
    found = _sql.existing_events(conn, (e.event_id for e in batch))
    if not found:
        return None
    by_id = {row.event_id: row for row in found}
    rows = [by_id.get(event.event_id) for event in batch]
    first = rows[0]
    complete = first is not None and all(
        row is not None and row.stream_id == stream_id and row.version == first.version + i
        for i, row in enumerate(rows)
    )
    if complete and first is not None and (not isinstance(expected, int) or first.version == expected + 1):
        return [
            RecordedEvent(
                stream_id=stream_id,
                version=row.version,
                position=row.position,
                event=event,
                metadata=_parse_metadata(row.metadata),
                recorded_at=row.recorded_at,
            )
            for event, row in zip(batch, rows, strict=True)
            if row is not None
        ]
    elsewhere = next((row for row in found if row.stream_id != stream_id), None)
    if elsewhere is not None:
        raise _already_used(elsewhere.event_id, elsewhere.stream_id)
    raise ConcurrencyError(
        f"stream {stream_id!r}: some of these events are already recorded at other versions",
        entity="stream",
        id=stream_id,
        version=expected if isinstance(expected, int) else None,
        expected_version=_expected_text(expected),
    )


def _conflict(
    conn: Connection, stream_id: str, expected: ExpectedVersion, actual: int | None = None
) -> ConcurrencyError:
    if actual is None:
        actual = _sql.stream_version(conn, stream_id)
    return ConcurrencyError(
        f"stream {stream_id!r} is at version {actual}, not at {_expected_text(expected)}: reload and retry",
        entity="stream",
        id=stream_id,
        version=expected if isinstance(expected, int) else None,
        expected_version=_expected_text(expected),
        actual_version=actual,
    )


def _records(
    batch: list[DomainEvent], rows: list[dict[str, Any]], positions: list[int], metadata: dict[str, Any]
) -> list[RecordedEvent]:
    return [
        RecordedEvent(row["stream_id"], row["version"], position, event, metadata, row["recorded_at"])
        for event, row, position in zip(batch, rows, positions, strict=True)
    ]


def decoded(types: EventTypes, rows: Iterable[Any]) -> list[RecordedEvent]:
    """RecordedEvents of rows of ``_sql.EVENT_COLUMNS`` (unpacked by position: faster than by name)."""
    decode = types.decode
    parsed: dict[str, dict[str, Any]] = {}
    records = []
    for position, event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at in rows:
        # The events of one append share their metadata text: parse it once.
        meta = parsed.get(metadata)
        if meta is None:
            meta = parsed[metadata] = _parse_metadata(metadata)
        event = decode(event_type, schema_version, data, event_id)
        records.append(RecordedEvent(stream_id, version, position, event, meta, recorded_at))
    return records


def _already_used(event_id: Any, stream_id: str) -> ConflictError:
    return ConflictError(
        f"event {event_id} is already recorded (in stream {stream_id!r}): an event id is recorded once",
        table="keel_events",
        columns=["event_id"],
    )


def _parse_metadata(text: str | dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text) if isinstance(text, str) else text
    return parsed


def _matches(version: int, expected: ExpectedVersion, exists: bool) -> bool:
    if expected is ANY:
        return True
    if isinstance(expected, int):
        return version == expected
    if expected.name == "NO_STREAM":
        return not exists
    return exists


def _expected_text(expected: ExpectedVersion) -> str:
    return str(expected) if isinstance(expected, int) else expected.name
