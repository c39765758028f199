"""``InMemoryEventStore``: the event store's twin for unit tests, without a database.

Same checks, same expected-version rules, same idempotency and the same
encoding (events are kept as the JSON the SQL store writes and decoded on
read, so upcasters and unknown types behave alike); it runs through the
event store's contract tests beside the SQL store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from keel.cross_cutting.error import ConcurrencyError, ConflictError
from keel.domain.messages import DomainEvent, utcnow
from keel.domain.streams import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, RecordedEvent, Snapshot
from keel.infrastructure.event_store import _checks
from keel.infrastructure.event_store._types import EventTypes, default_event_types, schema_version_of
from keel.infrastructure.message_metadata import current_metadata


@dataclass(frozen=True, slots=True)
class _Row:
    position: int
    event_id: UUID
    stream_id: str
    version: int
    event_type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: datetime


class InMemoryEventStore:
    """An :class:`keel.event_store.EventStore` held in memory (one per test, or shared by a test's fakes)."""

    def __init__(self, *, types: EventTypes | None = None, max_event_bytes: int = _checks.DEFAULT_MAX_EVENT_BYTES):
        self.types = types if types is not None else default_event_types
        self.max_event_bytes = max_event_bytes
        self._rows: list[_Row] = []
        self._by_id: dict[UUID, _Row] = {}
        self._versions: dict[str, int] = {}
        self._snapshots: dict[str, Snapshot] = {}

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[RecordedEvent]:
        """See :meth:`keel.event_store.SqlAlchemyEventStore.append`."""
        return await self.append_many([(stream_id, events, expected_version)], metadata=metadata)

    async def append_many(
        self,
        appends: Iterable[tuple[str, Sequence[DomainEvent], ExpectedVersion]],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[RecordedEvent]:
        """See :meth:`keel.event_store.SqlAlchemyEventStore.append_many`: all streams or none."""
        plan = []
        named: set[str] = set()
        for stream_id, events, expected_version in appends:
            stream_id = _checks.check_stream_id(stream_id)
            if stream_id in named:
                raise _checks.invalid(
                    f"stream {stream_id!r} appears twice in one append_many", "appends", "duplicate_stream"
                )
            named.add(stream_id)
            expected = _checks.check_expected_version(expected_version)
            batch = list(events)
            _checks.check_events(stream_id, batch)
            plan.append((stream_id, batch, expected))
        if not plan:
            raise _checks.invalid("nothing to append: no streams given", "appends", "empty_batch")
        merged = {**current_metadata(), **(metadata or {})}
        encoded = [[(e, e.model_dump_json()) for e in batch] for _, batch, _ in plan]
        for batch_encoded in encoded:
            for event, data in batch_encoded:
                _checks.check_size(event, len(data), self.max_event_bytes)
        if len(plan) == 1:
            # The single append's order, as the SQL store's: a repeat is answered before the
            # version check where the check cannot fail, after it where it can.
            stream_id, batch, expected = plan[0]
            if expected is ANY or expected is STREAM_EXISTS:
                repeat = self._already_recorded(stream_id, batch, expected)
                if repeat is not None:
                    return repeat
            if not self._matches(stream_id, expected):
                repeat = self._already_recorded(stream_id, batch, expected)
                if repeat is not None:
                    return repeat
        else:
            for row in (self._by_id.get(e.event_id) for _, batch, _ in plan for e in batch):
                if row is not None:
                    raise _already_used(row.event_id, row.stream_id)
        for stream_id, _, expected in plan:
            if not self._matches(stream_id, expected):
                raise ConcurrencyError(
                    f"stream {stream_id!r} is at version {self._versions.get(stream_id, 0)}, "
                    f"not at {_text(expected)}: reload and retry",
                    entity="stream",
                    id=stream_id,
                    version=expected if isinstance(expected, int) else None,
                    expected_version=_text(expected),
                    actual_version=self._versions.get(stream_id, 0),
                )
        for row in (self._by_id.get(e.event_id) for _, batch, _ in plan for e in batch):
            if row is not None:
                raise _already_used(row.event_id, row.stream_id)
        now, text = utcnow(), json.dumps(merged)
        records = []
        for (stream_id, _, _), batch_encoded in zip(plan, encoded, strict=True):
            version = self._versions.get(stream_id, 0)
            for event, data in batch_encoded:
                version += 1
                cls = type(event)
                row = _Row(
                    len(self._rows) + 1, event.event_id, stream_id, version, cls.message_type,
                    schema_version_of(cls), data, text, now,
                )  # fmt: skip
                self._rows.append(row)
                self._by_id[row.event_id] = row
                records.append(RecordedEvent(stream_id, version, row.position, event, merged, now))
            self._versions[stream_id] = version
        return records

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """See :meth:`keel.event_store.SqlAlchemyEventStore.read_stream`."""
        stream_id = _checks.check_stream_id(stream_id)
        _checks.check_range(from_version, "from_version", 0)
        if to_version is not None:
            _checks.check_range(to_version, "to_version", 0)
        if limit is not None:
            _checks.check_range(limit, "limit", 1)
        rows = [
            r
            for r in self._rows
            if r.stream_id == stream_id
            and r.version >= from_version
            and (to_version is None or r.version <= to_version)
        ]
        if backwards:
            rows.reverse()
        return self._decoded(rows[:limit] if limit is not None else rows)

    async def read_all(
        self, *, after: int = 0, limit: int | None = None, types: Iterable[str | type[DomainEvent]] | None = None
    ) -> list[RecordedEvent]:
        """See :meth:`keel.event_store.SqlAlchemyEventStore.read_all`."""
        _checks.check_range(after, "after", 0)
        if limit is not None:
            _checks.check_range(limit, "limit", 1)
        names = None if types is None else {t if isinstance(t, str) else t.message_type for t in types}
        rows = [r for r in self._rows[after:] if names is None or r.event_type in names]
        return self._decoded(rows[:limit] if limit is not None else rows)

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 for an unknown stream)."""
        return self._versions.get(_checks.check_stream_id(stream_id), 0)

    async def save_snapshot(
        self, stream_id: str, version: int, state: Mapping[str, Any], *, schema_version: int = 1
    ) -> None:
        """Keep the snapshot unless a newer one is held."""
        stream_id = _checks.check_stream_id(stream_id)
        _checks.check_range(version, "version", 1)
        held = self._snapshots.get(stream_id)
        if held is None or held.version <= version:
            # Stored as JSON and read back, as the database would: the caller's dict is not shared.
            copied = json.loads(json.dumps(dict(state)))
            self._snapshots[stream_id] = Snapshot(stream_id, version, copied, schema_version, utcnow())

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's latest snapshot, or None."""
        return self._snapshots.get(_checks.check_stream_id(stream_id))

    def _matches(self, stream_id: str, expected: ExpectedVersion) -> bool:
        exists = stream_id in self._versions
        if expected is ANY:
            return True
        if expected is NO_STREAM:
            return not exists
        if expected is STREAM_EXISTS:
            return exists
        return self._versions.get(stream_id, 0) == expected

    def _already_recorded(
        self, stream_id: str, batch: list[DomainEvent], expected: ExpectedVersion
    ) -> list[RecordedEvent] | None:
        rows = [self._by_id.get(e.event_id) for e in batch]
        if all(row is None for row in rows):
            return None
        first = rows[0]
        complete = first is not None and all(
            row is not None and row.stream_id == stream_id and row.version == first.version + i
            for i, row in enumerate(rows)
        )
        if complete and first is not None and (not isinstance(expected, int) or first.version == expected + 1):
            return [
                RecordedEvent(stream_id, row.version, row.position, event, json.loads(row.metadata), row.recorded_at)
                for event, row in zip(batch, rows, strict=True)
                if row is not None
            ]
        elsewhere = next((row for row in rows if row is not None and row.stream_id != stream_id), None)
        if elsewhere is not None:
            raise _already_used(elsewhere.event_id, elsewhere.stream_id)
        raise ConcurrencyError(
            f"stream {stream_id!r}: some of these events are already recorded at other versions",
            entity="stream",
            id=stream_id,
        )

    def _decoded(self, rows: list[_Row]) -> list[RecordedEvent]:
        return [
            RecordedEvent(
                r.stream_id,
                r.version,
                r.position,
                self.types.decode(r.event_type, r.schema_version, r.data, r.event_id),
                json.loads(r.metadata),
                r.recorded_at,
            )
            for r in rows
        ]


def _already_used(event_id: UUID, stream_id: str) -> ConflictError:
    """What the SQL store's unique event_id constraint says."""
    return ConflictError(
        f"event {event_id} is already recorded (in stream {stream_id!r}): an event id is recorded once",
        table="keel_events",
        columns=["event_id"],
    )


def _text(expected: ExpectedVersion) -> str:
    return str(expected) if isinstance(expected, int) else expected.name
