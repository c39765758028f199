"""``SqlAlchemyEventStore``: the event store over SQLAlchemy, standalone or inside a unit of work."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.telemetry import span
from keel.domain.aggregate import AggregateRoot
from keel.domain.messages import DomainEvent, utcnow
from keel.domain.streams import ANY, ExpectedVersion, RecordedEvent, Snapshot
from keel.infrastructure.database._translate import translate_db_error
from keel.infrastructure.event_store import _appending, _checks, _sql
from keel.infrastructure.event_store._types import EventTypes, default_event_types
from keel.infrastructure.message_metadata import current_metadata

if TYPE_CHECKING:
    from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork

R = TypeVar("R")
_MISSING_TABLE = ("42P01",)
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
        rows, merged = _appending.encode(stream_id, batch, metadata, self.max_event_bytes)
        with span("keel.event_store.append", attributes={"keel.stream_id": stream_id, "keel.events": len(batch)}):
            recorded = await self._run(
                lambda conn: _appending.append(conn, stream_id, batch, rows, merged, expected), write=True, single=True
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
                raise _checks.invalid(
                    f"stream {stream_id!r} appears twice in one append_many", "appends", "duplicate_stream"
                )
            named.add(stream_id)
            expected = _checks.check_expected_version(expected_version)
            batch = list(events)
            _checks.check_events(stream_id, batch)
            plan.append((stream_id, batch, expected))
            rows.extend(_appending.encode(stream_id, batch, metadata, self.max_event_bytes, merged)[0])
        if not plan:
            raise _checks.invalid("nothing to append: no streams given", "appends", "empty_batch")
        with span("keel.event_store.append", attributes={"keel.streams": len(plan), "keel.events": len(rows)}):
            recorded = await self._run(lambda conn: _appending.append_many(conn, plan, rows, merged), write=True)
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
        with span("keel.event_store.read", attributes={"keel.stream_id": stream_id}) as current:
            read = await self._run(lambda conn: _appending.decoded(self.types, conn.execute(query)))
            if current is not None:
                current.set_attribute("keel.events", len(read))
            return read

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
        with span("keel.event_store.read", attributes={"keel.after": after}) as current:
            read = await self._run(lambda conn: _appending.decoded(self.types, conn.execute(query)))
            if current is not None:
                current.set_attribute("keel.events", len(read))
            return read

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


def _engine_of(session_factory: async_sessionmaker[AsyncSession]) -> AsyncEngine | None:
    bind = session_factory.kw.get("bind")
    return bind if isinstance(bind, AsyncEngine) else None


def _missing_table(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in _MISSING_TABLE or "no such table" in str(exc.orig).lower()
