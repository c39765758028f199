"""``OutboxWriter``: the commit participant that writes routed events to ``keel_outbox``.

Before the unit of work flushes, it adds one row per routed event of the
aggregates the unit of work has seen, so the rows commit or roll back with
the business change: the events of a rolled-back unit of work never reach the
outbox. On PostgreSQL the same statement sends ``NOTIFY <channel>``, which is
delivered only if the transaction commits and wakes the relays at once.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from keel.cross_cutting.error import ConfigurationError
from keel.domain.messages import DomainEvent, utcnow
from keel.infrastructure.database.errors import sqlstate
from keel.infrastructure.message_metadata import CORRELATION_ID, current_metadata
from keel.infrastructure.outbox.routing import OutboxRouting
from keel.infrastructure.outbox.tables import PENDING, outbox
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.service_layer.participants import Participant

#: Attribute names every outbox message carries (besides ``current_metadata()``'s).
EVENT_TYPE = "event_type"
EVENT_ID = "event_id"
SCHEMA_VERSION = "schema_version"
DEFAULT_CHANNEL = "keel_outbox"
_UNDEFINED_TABLE = "42P01"
#: The columns a row of :meth:`OutboxWriter.rows_for` fills.
_ROW_KEYS = ("id", "topic", "ordering_key", "payload", "attributes", "status", "created_at", "available_at", "attempts")
#: SQLite statements for commits of up to this many routed events are kept; larger commits build theirs.
_CACHED_COUNTS = 32
#: Rows per INSERT (nine parameters each).
_CHUNK = 1000


class OutboxWriter(Participant[SqlAlchemyUnitOfWork]):
    """Writes the routed events of each commit to ``keel_outbox`` in the committing transaction.

    One instance serves any number of units of work. Events whose type has no
    route in ``routing`` are not written.
    """

    def __init__(self, routing: OutboxRouting, *, channel: str = DEFAULT_CHANNEL, notify: bool = True) -> None:
        self.routing = routing
        self.channel = channel
        self.notify = notify
        self._statements: dict[int, Executable] = {}

    async def before_flush(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        """Insert one row per routed event (and NOTIFY the relays on PostgreSQL)."""
        if not events or not self.routing:
            return
        rows = self.rows_for(events)
        if not rows:
            return
        session = uow.session
        dialect = session.get_bind().dialect.name
        try:
            # In chunks: a statement takes a bounded number of parameters (32,767 on PostgreSQL).
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                if dialect == "postgresql":
                    sql = _postgresql_insert(len(chunk), notify=self.notify)
                    parameters = _positional(chunk) + ((self.channel,) if self.notify else ())
                    await session.run_sync(_execute_driver_sql, sql, parameters)
                else:
                    await session.run_sync(_execute, self._statement(dialect, len(chunk)), _parameters(chunk))
        except DBAPIError as exc:
            if sqlstate(exc) == _UNDEFINED_TABLE or "no such table" in str(exc.orig).lower():
                raise ConfigurationError(
                    "table keel_outbox does not exist: run keel's migrations (`alembic upgrade keel@head`) "
                    "or create keel.orm.keel_metadata's tables",
                    table="keel_outbox",
                ) from exc
            raise

    def rows_for(self, events: Sequence[DomainEvent]) -> list[dict[str, Any]]:
        """The outbox rows of ``events`` (routed ones only), in the order the events were recorded."""
        rows: list[dict[str, Any]] = []
        metadata: dict[str, str] | None = None
        now = utcnow()
        for event in events:
            route = self.routing.route_for(event)
            if route is None:
                continue
            if metadata is None:
                metadata = current_metadata()
            event_id = str(event.event_id)
            attributes = {
                **metadata,
                EVENT_TYPE: type(event).message_type,
                EVENT_ID: event_id,
                SCHEMA_VERSION: str(getattr(type(event), "schema_version", 1)),
            }
            # An event raised outside any correlation starts its own.
            attributes.setdefault(CORRELATION_ID, event_id)
            # Microseconds apart, so created_at tells the order of one commit's events too.
            created = now + timedelta(microseconds=len(rows))
            rows.append(
                {
                    "id": event_id,
                    "topic": route.topic,
                    "ordering_key": route.key(event),
                    "payload": route.body(event),
                    "attributes": attributes,
                    "status": PENDING,
                    "created_at": created,
                    "available_at": created,
                    "attempts": 0,
                }
            )
        return rows

    def _statement(self, dialect: str, count: int) -> Executable:
        """The INSERT of ``count`` rows (SQLite), with bound parameters ``<column>_<n>``; built once."""
        cached = self._statements.get(count)
        if cached is not None:
            return cached
        if dialect != "sqlite":
            raise ConfigurationError(f"the outbox is not supported on {dialect!r}", dialect=dialect)
        rows: list[dict[str, Any]] = [
            {name: bindparam(f"{name}_{n}", type_=outbox.c[name].type) for name in _ROW_KEYS} for n in range(count)
        ]
        # No identity columns on SQLite: the position follows the largest so far. Writers
        # are serialised there, so no other transaction can take the same numbers.
        last = select(func.coalesce(func.max(outbox.c.position), 0)).scalar_subquery()
        statement = insert(outbox).values([{**row, "position": last + n} for n, row in enumerate(rows, start=1)])
        if count <= _CACHED_COUNTS:
            self._statements[count] = statement
        return statement


@functools.lru_cache(maxsize=64)
def _postgresql_insert(count: int, *, notify: bool) -> str:
    """The INSERT of ``count`` rows in asyncpg's ``$n`` style, run as a CTE of ``pg_notify($last)`` if ``notify``.

    Plain SQL through ``exec_driver_sql`` because this runs at every commit: it
    costs a fifth of the client CPU of the same statement compiled by SQLAlchemy
    (bind processing, result set-up), measured by benchmarks/outbox_relay.py.
    Table and column names are keel's own constants; every value is a parameter.
    """
    width = len(_ROW_KEYS)
    casts = ["::json" if name == "attributes" else "" for name in _ROW_KEYS]
    values = ", ".join(
        "(" + ", ".join(f"${n * width + i + 1}{casts[i]}" for i in range(width)) + ")" for n in range(count)
    )
    insert_sql = f"INSERT INTO keel_outbox ({', '.join(_ROW_KEYS)}) VALUES {values}"
    if not notify:
        return insert_sql
    # One round trip: a data-modifying CTE runs to completion whether or not the outer query reads it.
    return f"WITH keel_outbox_written AS ({insert_sql}) SELECT pg_notify(${count * width + 1}, '')"


def _positional(rows: list[dict[str, Any]]) -> tuple[Any, ...]:
    return tuple(
        json.dumps(row[name], separators=(",", ":")) if name == "attributes" else row[name]
        for row in rows
        for name in _ROW_KEYS
    )


def _execute_driver_sql(session: Session, sql: str, parameters: tuple[Any, ...]) -> None:
    session.connection().exec_driver_sql(sql, parameters)


def _parameters(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {f"{name}_{n}": value for n, row in enumerate(rows) for name, value in row.items()}


def _execute(session: Session, statement: Executable, parameters: dict[str, Any]) -> None:
    # On the session's connection, in one trip through the greenlet bridge.
    session.connection().execute(statement, parameters)
