"""``SqlAlchemyEventStore``: the event store over SQLAlchemy, standalone or inside a unit of work."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.cross_cutting.error import ConcurrencyError, ConfigurationError, ConflictError
from keel.domain.aggregate import AggregateRoot
from keel.domain.messages import DomainEvent, utcnow
from keel.domain.streams import ANY, STREAM_EXISTS, ExpectedVersion, RecordedEvent, Snapshot
from keel.infrastructure.database._translate import translate_db_error
from keel.infrastructure.event_store import _checks, _postgresql, _sql
from keel.infrastructure.event_store._types import EventTypes, default_event_types, schema_version_of
from keel.infrastructure.message_metadata import current_metadata

if TYPE_CHECKING:
    from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork

R = TypeVar("R")
_MISSING_TABLE = ("42P01",)
#: event class -> (stored type name, schema version).
_STORED_AS: dict[type[DomainEvent], tuple[str, int]] = {}
#: uow.__dict__ key of the holder of the events appended through the unit of work's store.
_APPENDED = "_keel_appended_events"


class SqlAlchemyEventStore:
    """The event store on PostgreSQL or SQLite (see docs/event-store.md).

    Standalone, each call runs in a transaction of its own. Declared on a
    unit of work (``events: SqlAlchemyEventStore``) or bound to one with
    :meth:`for_unit_of_work`, it runs in that unit of work's session, so its
    appends commit or roll back with the rest of the work.

    ``types`` is the registry of event classes and upcasters (the
    process-wide ``default_event_types`` unless given); ``max_event_bytes``
    bounds one event's JSON.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        types: EventTypes | None = None,
        max_event_bytes: int = _checks.DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.session_factory = session_factory
        self.types = types if types is not None else default_event_types
        self.max_event_bytes = max_event_bytes
        self._session: AsyncSession | None = None
        #: The unit of work whose session this store runs in; what it appends is announced to it.
        self._uow: SqlAlchemyUnitOfWork | None = None

    @classmethod
    def for_unit_of_work(cls, uow: SqlAlchemyUnitOfWork, model: type[Any] | None = None) -> Self:
        """A store running in ``uow``'s session (how a unit of work builds a declared store).

        The events it appends reach ``uow.collect_new_events()`` (and so the
        bus's event handlers) once the unit of work commits, as an
        aggregate's recorded events do.
        """
        return cls(uow.session_factory).bind(uow)

    def bind(self, uow: SqlAlchemyUnitOfWork) -> Self:
        """This store (same registry and limits) running in ``uow``'s transaction; see :meth:`for_unit_of_work`."""
        bound = copy.copy(self)
        bound._session = uow.session
        bound._uow = uow
        return bound

    # --- writing ----------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[RecordedEvent]:
        """Record ``events`` at the end of ``stream_id`` if it is at ``expected_version``.

        ``expected_version`` is the stream's exact current version (0 for a
        new stream), ``NO_STREAM``, ``STREAM_EXISTS`` or ``ANY``; a mismatch is
        :class:`keel.ConcurrencyError`. Appending events already recorded at
        that place (same ids, same order) returns their records and writes
        nothing; any other overlap is a ``ConcurrencyError``.
        """
        stream_id = _checks.check_stream_id(stream_id)
        expected = _checks.check_expected_version(expected_version)
        batch = list(events)
        _checks.check_events(stream_id, batch)
        rows, merged = self._rows(stream_id, batch, metadata)
        recorded = await self._run(
            lambda conn: self._append(conn, stream_id, batch, rows, merged, expected), write=True, single=True
        )
        self._announce(batch)
        return recorded

    async def append_many(
        self,
        appends: Iterable[tuple[str, Sequence[DomainEvent], ExpectedVersion]],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[RecordedEvent]:
        """Append to many streams in one transaction, all or none; the records in the order given.

        Costs one statement for the stream versions and one multi-row
        insert for the events (in pages of the driver's insertmanyvalues
        size), whatever the number of streams.
        """
        plan: list[tuple[str, list[DomainEvent], ExpectedVersion]] = []
        rows: list[dict[str, Any]] = []
        merged = {**current_metadata(), **(metadata or {})}
        named: set[str] = set()
        for stream_id, events, expected_version in appends:
            stream_id = _checks.check_stream_id(stream_id)
            if stream_id in named:
                raise _checks._invalid(
                    f"stream {stream_id!r} appears twice in one append_many", "appends", "duplicate_stream"
                )
            named.add(stream_id)
            expected = _checks.check_expected_version(expected_version)
            batch = list(events)
            _checks.check_events(stream_id, batch)
            plan.append((stream_id, batch, expected))
            rows.extend(self._rows(stream_id, batch, metadata, merged)[0])
        if not plan:
            raise _checks._invalid("nothing to append: no streams given", "appends", "empty_batch")
        recorded = await self._run(lambda conn: self._append_many(conn, plan, rows, merged), write=True)
        self._announce([e for _, batch, _ in plan for e in batch])
        return recorded

    async def save_snapshot(
        self, stream_id: str, version: int, state: Mapping[str, Any], *, schema_version: int = 1
    ) -> None:
        """Keep ``state`` as ``stream_id``'s snapshot at ``version`` (an older one is replaced, a newer one kept)."""
        stream_id = _checks.check_stream_id(stream_id)
        _checks.check_range(version, "version", 1)
        values = {
            "stream_id": stream_id,
            "version": version,
            "schema_version": schema_version,
            "state": dict(state),
            "taken_at": utcnow(),
        }
        await self._run(lambda conn: _sql.save_snapshot(conn, values), write=True)

    # --- reading ----------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """The stream's events with ``from_version <= version <= to_version``, oldest first unless ``backwards``.

        An unknown stream reads as empty.
        """
        stream_id = _checks.check_stream_id(stream_id)
        _checks.check_range(from_version, "from_version", 0)
        if to_version is not None:
            _checks.check_range(to_version, "to_version", 0)
        if limit is not None:
            _checks.check_range(limit, "limit", 1)
        query = _sql.stream_query(stream_id, from_version, to_version, backwards, limit)
        return await self._run(lambda conn: self._decoded(conn.execute(query)))

    async def read_all(
        self, *, after: int = 0, limit: int | None = None, types: Iterable[str | type[DomainEvent]] | None = None
    ) -> list[RecordedEvent]:
        """Events with a position above ``after``, in position order, optionally only of ``types``.

        Never skips: once an event at position N is returned, every event
        that will ever have a position below N has been returned or is
        already visible (see docs/event-store.md, "Ordering").
        """
        _checks.check_range(after, "after", 0)
        if limit is not None:
            _checks.check_range(limit, "limit", 1)
        names = None if types is None else [t if isinstance(t, str) else t.message_type for t in types]
        query = _sql.all_query(after, limit, names)
        return await self._run(lambda conn: self._decoded(conn.execute(query)))

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: how many events it holds (0 for an unknown stream)."""
        stream_id = _checks.check_stream_id(stream_id)
        return await self._run(lambda conn: _sql.stream_version(conn, stream_id))

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's latest snapshot, or None."""
        stream_id = _checks.check_stream_id(stream_id)
        row = await self._run(lambda conn: _sql.load_snapshot(conn, stream_id))
        if row is None:
            return None
        return Snapshot(
            stream_id=row.stream_id,
            version=row.version,
            state=row.state,
            schema_version=row.schema_version,
            taken_at=row.taken_at,
        )

    # --- internals ----------------------------------------------------------------------

    def _announce(self, batch: list[DomainEvent]) -> None:
        """Hand appended events to the unit of work, to be released when it commits."""
        if self._uow is None:
            return
        holder = self._uow.__dict__.get(_APPENDED)
        if not isinstance(holder, _AppendedEvents):
            holder = self._uow.__dict__[_APPENDED] = _AppendedEvents()
        holder.pending_events.extend(batch)
        self._uow.mark_seen(holder)

    def _rows(
        self,
        stream_id: str,
        batch: list[DomainEvent],
        metadata: Mapping[str, Any] | None,
        merged: dict[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The rows to insert (versions filled in later) and the metadata written with them."""
        if merged is None:
            merged = {**current_metadata(), **(metadata or {})}
        now = utcnow()
        metadata_json = json.dumps(merged)
        rows = []
        limit = self.max_event_bytes
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

    def _append(
        self,
        conn: Connection,
        stream_id: str,
        batch: list[DomainEvent],
        rows: list[dict[str, Any]],
        metadata: dict[str, Any],
        expected: ExpectedVersion,
    ) -> list[RecordedEvent]:
        # Idempotency is checked before the claim when the claim itself cannot fail
        # (ANY, STREAM_EXISTS on an existing stream): a failed insert would abort the
        # transaction on PostgreSQL, too late to answer "already recorded".
        if expected is ANY or expected is STREAM_EXISTS:
            done = self._already_recorded(conn, stream_id, batch, expected, metadata)
            if done is not None:
                return done
        if conn.dialect.name == "postgresql":
            drawn = _postgresql.append(conn, stream_id, rows, rows[0]["metadata"], expected, rows[0]["recorded_at"])
            if drawn is None:
                return self._refused(conn, stream_id, batch, expected, metadata)
            for row, (_, version) in zip(rows, drawn, strict=True):
                row["version"] = version
            return self._records(batch, rows, [position for position, _ in drawn], metadata)
        previous = _sql.claim(conn, stream_id, len(batch), expected, rows[0]["recorded_at"])
        if previous is None:
            return self._refused(conn, stream_id, batch, expected, metadata)
        for offset, row in enumerate(rows, start=1):
            row["version"] = previous + offset
        positions = _sql.insert_events(conn, rows)
        return self._records(batch, rows, positions, metadata)

    def _refused(
        self,
        conn: Connection,
        stream_id: str,
        batch: list[DomainEvent],
        expected: ExpectedVersion,
        metadata: dict[str, Any],
    ) -> list[RecordedEvent]:
        """The claim failed: the records if this batch is already there (a repeat), else the conflict."""
        done = self._already_recorded(conn, stream_id, batch, expected, metadata)
        if done is not None:
            return done
        raise self._conflict(conn, stream_id, expected)

    def _append_many(
        self,
        conn: Connection,
        plan: list[tuple[str, list[DomainEvent], ExpectedVersion]],
        rows: list[dict[str, Any]],
        metadata: dict[str, Any],
    ) -> list[RecordedEvent]:
        # Checked up front (one query for the batch): a unique violation would abort
        # the transaction, and a batch is not idempotent as a single append is.
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
                    raise self._conflict(conn, stream_id, expected)
                previous[stream_id] = found
        else:
            # Under the append lock no other writer can move a stream: read every version
            # in one statement, check them here, write them back in one statement.
            current = _sql.current_versions(conn, [stream_id for stream_id, _, _ in plan])
            previous = {}
            for stream_id, _batch, expected in plan:
                version = current.get(stream_id, 0)
                if not _matches(version, expected, stream_id in current):
                    raise self._conflict(conn, stream_id, expected, version)
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
        return self._records([e for _, batch, _ in plan for e in batch], rows, positions, metadata)

    def _already_recorded(
        self,
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
        raise ConcurrencyError(
            f"stream {stream_id!r}: some of these events are already recorded elsewhere",
            entity="stream",
            id=stream_id,
            version=expected if isinstance(expected, int) else None,
            expected_version=_expected_text(expected),
        )

    def _conflict(
        self, conn: Connection, stream_id: str, expected: ExpectedVersion, actual: int | None = None
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
        self, batch: list[DomainEvent], rows: list[dict[str, Any]], positions: list[int], metadata: dict[str, Any]
    ) -> list[RecordedEvent]:
        return [
            RecordedEvent(row["stream_id"], row["version"], position, event, metadata, row["recorded_at"])
            for event, row, position in zip(batch, rows, positions, strict=True)
        ]

    def _decoded(self, rows: Iterable[Any]) -> list[RecordedEvent]:
        """RecordedEvents of rows of ``_sql.EVENT_COLUMNS`` (unpacked by position: faster than by name)."""
        decode = self.types.decode
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

    async def _run(self, work: Callable[[Connection], R], *, write: bool = False, single: bool = False) -> R:
        """Run ``work`` on the unit of work's connection, or in a transaction of its own.

        ``single``: the work's write is one statement on PostgreSQL, atomic by itself,
        so standalone it runs in autocommit and saves the BEGIN and COMMIT round trips.
        """
        try:
            if self._session is not None:
                return await self._session.run_sync(lambda session: work(session.connection()))
            engine = _engine_of(self.session_factory)
            if engine is None:
                raise ConfigurationError(
                    "SqlAlchemyEventStore needs a session factory bound to an engine "
                    "(async_sessionmaker(engine) or keel.infrastructure.database.create_session_factory)"
                )
            if single and engine.dialect.name == "postgresql":
                async with engine.connect() as conn:
                    autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    return await autocommit.run_sync(work)
            if write:
                async with engine.begin() as conn:
                    return await conn.run_sync(work)
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        except DBAPIError as exc:
            if _missing_table(exc):
                raise ConfigurationError(
                    "the event store's tables do not exist: run keel's migrations "
                    "(`alembic upgrade keel@head`) or create keel.orm.keel_metadata's tables",
                    table="keel_events",
                ) from exc
            translated = translate_db_error(exc)
            if translated is None:
                raise
            raise translated from exc
        except SQLAlchemyError as exc:
            translated = translate_db_error(exc)
            if translated is None:
                raise
            raise translated from exc


class _AppendedEvents(AggregateRoot):
    """Carries the events a unit of work's store appended to its commit, like an aggregate's."""


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


def _engine_of(session_factory: async_sessionmaker[AsyncSession]) -> AsyncEngine | None:
    bind = session_factory.kw.get("bind")
    return bind if isinstance(bind, AsyncEngine) else None


def _missing_table(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in _MISSING_TABLE or "no such table" in str(exc.orig).lower()
