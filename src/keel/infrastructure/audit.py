"""The SQL side of automatic audit: the ``keel_audit`` writer and its commit participant.

:class:`RecordAudit` (a commit participant the container adds to every unit
of work) inserts the pending entry of the command being handled
(:func:`keel.cross_cutting.security.pending_audit_entry`) before the flush of
the handler's own transaction. :class:`SqlAlchemyAuditLog` writes, in a
transaction of its own, what no unit of work did (denials, failures,
handlers without a unit of work). :func:`audit_middleware` builds the bus
middleware from a session factory.

The table comes with keel's migrations (``alembic upgrade keel@head``); a
database without it is a :class:`keel.ConfigurationError` saying so, raised
before the first command is handled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import inspect, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.security import AuditEntry, AuditMiddleware, pending_audit_entry
from keel.domain.messages import DomainEvent
from keel.infrastructure.database._translate import translating
from keel.infrastructure.database.audit_table import audit
from keel.infrastructure.database.errors import sqlstate
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.service_layer.participants import Participant

_UNDEFINED_TABLE = "42P01"
#: session.info key: the audit entry this session's transaction inserted.
_INSERTED = "keel_audit_entry"


def missing_table_error() -> ConfigurationError:
    """The error for a database without ``keel_audit``."""
    return ConfigurationError(
        "table keel_audit does not exist: run keel's migrations (`alembic upgrade keel@head`, or "
        "keel.infrastructure.database.migrations.upgrade()) or create keel.orm.keel_metadata's tables; "
        "or turn auditing off with KEEL_SECURITY__AUDIT=false",
        table="keel_audit",
        variables=["KEEL_SECURITY__AUDIT"],
    )


class RecordAudit(Participant[SqlAlchemyUnitOfWork]):
    """Inserts the pending audit entry in the committing transaction (stateless; one serves all)."""

    async def before_flush(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        """Insert the entry of the command being handled, unless a committed transaction already did."""
        entry = pending_audit_entry()
        if entry is None:
            return
        session = uow.session
        try:
            await session.run_sync(_insert_row, entry.row())
        except DBAPIError as exc:
            if _missing_table(exc):
                raise missing_table_error() from exc
            raise
        session.info[_INSERTED] = entry

    async def after_commit(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        """The entry is durable: later commits of the same handling add nothing."""
        entry = uow.session.info.pop(_INSERTED, None)
        if entry is not None:
            entry.written = True


class SqlAlchemyAuditLog:
    """Writes audit entries to ``keel_audit`` in transactions of their own."""

    def __init__(self, session_factory: Callable[[], AsyncSession]) -> None:
        #: Returns a new session: an ``async_sessionmaker``, or a function calling the current one.
        self.session_factory = session_factory

    def __repr__(self) -> str:
        return "SqlAlchemyAuditLog()"

    async def check(self) -> None:
        """Raise :class:`ConfigurationError` when ``keel_audit`` does not exist."""
        async with self.session_factory() as session:
            with translating():
                exists = await session.run_sync(_has_table)
        if not exists:
            raise missing_table_error()

    async def record(self, entry: AuditEntry) -> None:
        """Insert ``entry``, or set the outcome of its row (a handler that failed after committing it)."""
        async with self.session_factory() as session:
            with translating():
                await session.run_sync(_upsert_row, entry.row())
                await session.commit()


def audit_middleware(session_factory: async_sessionmaker[AsyncSession]) -> AuditMiddleware:
    """The audit bus middleware writing to ``session_factory``'s database."""
    return AuditMiddleware(SqlAlchemyAuditLog(session_factory))


def _has_table(session: Session) -> bool:
    return inspect(session.connection()).has_table(audit.name)


#: Built once: its values are bound per execution.
_INSERT: Insert = audit.insert()


def _insert_row(session: Session, row: dict[str, Any]) -> None:
    # On the session's connection, one trip through the greenlet bridge (as processed_commands).
    session.connection().execute(_INSERT, row)


def _upsert_row(session: Session, row: dict[str, Any]) -> None:
    connection: Connection = session.connection()
    dialect = connection.dialect.name
    outcome = {"outcome": row["outcome"], "error_code": row["error_code"]}
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(audit).values(row).on_conflict_do_update(index_elements=[audit.c.id], set_=outcome)
        connection.execute(statement)
        return
    if connection.execute(update(audit).where(audit.c.id == row["id"]).values(outcome)).rowcount == 0:
        connection.execute(audit.insert(), row)


def _missing_table(exc: DBAPIError) -> bool:
    if sqlstate(exc) == _UNDEFINED_TABLE:
        return True
    return "no such table" in str(exc.orig).lower()
