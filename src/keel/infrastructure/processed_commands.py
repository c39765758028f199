"""Exactly-once commands: the record of each command handled, written with its effects.

:class:`RecordProcessedCommands` is a commit participant. When a unit of work
commits inside a command's handling (the bus's
:func:`keel.service_layer.commands.current_command`), it inserts
``(command_id, command_type, committed_at)`` into ``keel_processed_commands``
in that same transaction (before the work is flushed). A second attempt with the same id (the bus
retrying after a lost commit acknowledgement, or a client repeating a
request with the same idempotency key) finds the row, so its work is rolled
back and :class:`keel.CommandAlreadyHandledError` is raised: the effects are
applied once.

The table comes with keel's migrations (``alembic upgrade keel@head``); a
database without it is a :class:`keel.ConfigurationError` saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from keel.cross_cutting.error import ConfigurationError
from keel.domain.messages import DomainEvent, utcnow
from keel.infrastructure.database.errors import sqlstate
from keel.infrastructure.database.tables import processed_commands
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.service_layer.commands import CommandAlreadyHandledError, current_command
from keel.service_layer.participants import Participant

_UNDEFINED_TABLE = "42P01"
_STATEMENTS: dict[str, Insert] = {}
#: session.info key: the command this session's transaction recorded.
_RECORDED = "keel_recorded_command"


class RecordProcessedCommands(Participant[SqlAlchemyUnitOfWork]):
    """Records the command being handled in the committing transaction; refuses a repeat.

    One instance serves any number of units of work (it keeps no state of
    its own). Only the first transaction of a command's handling that
    commits records it; a handler's later commits in the same handling
    are not checked again.
    """

    async def before_flush(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        """Insert the record, or raise :class:`CommandAlreadyHandledError` if another attempt committed it.

        Before the flush rather than after: a repeat is refused before its
        changes are sent, and the unit of work needs no separate flush step.
        """
        context = current_command()
        if context is None or context.recorded:
            return
        session = uow.session
        statement = _insert(session.get_bind().dialect.name)
        values = {"command_id": context.command_id, "command_type": context.command_type, "committed_at": utcnow()}
        try:
            # On the session's connection, in one trip through the greenlet bridge: the
            # ORM's execute path costs more than the statement for a Core INSERT.
            inserted = await session.run_sync(_execute, statement, values)
        except DBAPIError as exc:
            if _missing_table(exc):
                raise ConfigurationError(
                    "table keel_processed_commands does not exist: run keel's migrations "
                    "(`alembic upgrade keel@head`, or keel.infrastructure.database.migrations.upgrade()) "
                    "or create keel.orm.keel_metadata's tables",
                    table="keel_processed_commands",
                ) from exc
            raise
        if inserted:
            session.info[_RECORDED] = context
            return
        row = (
            await session.execute(
                select(processed_commands.c.command_type, processed_commands.c.committed_at).where(
                    processed_commands.c.command_id == context.command_id
                )
            )
        ).first()
        details: dict[str, Any] = {"command_id": context.command_id, "command_type": context.command_type}
        if row is not None:
            details["command_type"] = row.command_type
            details["committed_at"] = row.committed_at.isoformat()
        raise CommandAlreadyHandledError(
            f"command {context.command_id!r} was already handled; it is not applied again", **details
        )

    async def after_commit(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        """Mark the command recorded, so the bus does not run it again and later commits skip the insert."""
        context = uow.session.info.pop(_RECORDED, None)
        if context is not None:
            context.recorded = True


def _insert(dialect: str) -> Insert:
    """The record's INSERT for ``dialect``, built once (its values are bound per execution)."""
    cached = _STATEMENTS.get(dialect)
    if cached is not None:
        return cached
    # ON CONFLICT DO NOTHING rather than catching the unique violation: the
    # transaction stays usable (PostgreSQL aborts it on an error) for the read after it.
    key = [processed_commands.c.command_id]
    if dialect == "postgresql":
        statement: Insert = postgresql.insert(processed_commands).on_conflict_do_nothing(index_elements=key)
    elif dialect == "sqlite":
        statement = sqlite.insert(processed_commands).on_conflict_do_nothing(index_elements=key)
    else:
        raise ConfigurationError(f"recording processed commands is not supported on {dialect!r}")
    _STATEMENTS[dialect] = statement
    return statement


def _execute(session: Session, statement: Insert, values: dict[str, Any]) -> bool:
    """Whether the row was inserted (the status's row count; RETURNING would cost a result set)."""
    return session.connection().execute(statement, values).rowcount == 1


def _missing_table(exc: DBAPIError) -> bool:
    if sqlstate(exc) == _UNDEFINED_TABLE:
        return True
    return "no such table" in str(exc.orig).lower()
