"""The session side of read-only units of work and read-your-writes.

:func:`open_read_session` opens a read-only unit of work's session on the
replica its factory's router chooses (or the primary), with PostgreSQL
transactions begun ``READ ONLY`` and every write refused by
:func:`refuse_writes` before it reaches the database.
:func:`watch_commit_position` records the primary's WAL position after a
commit, for the read-your-writes wait (see :mod:`keel.infrastructure.database.replicas`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.util import await_only

from keel.cross_cutting.error import KeelError, UnitOfWorkError
from keel.infrastructure.database.replicas import (
    PRIMARY_ONLY,
    read_only_engine,
    remember_commit_position,
    router_of,
)

_logger = logging.getLogger("keel.replicas")


async def open_read_session(session_factory: async_sessionmaker[AsyncSession], **options: Any) -> AsyncSession:
    """A session for a read-only unit of work: on a healthy replica if the factory has some, else the primary.

    The replica's connection is taken at once, so a replica that went down
    since its last health check is marked down and the next one (or the
    primary) is used, instead of the unit of work failing at its first query.
    """
    router = router_of(session_factory)
    if router is not None:
        for _ in range(len(router.engines) + 1):
            replica = await router.engine_for_read()
            if replica is None:
                break
            session = session_factory(bind=read_only_engine(replica), **options)
            try:
                await session.connection()
            except (SQLAlchemyError, OSError, KeelError) as exc:
                router.mark_unhealthy(replica, exc)
                await _discard(session)
                continue
            return refuse_writes(session)
    primary = session_factory.kw.get("bind")
    if isinstance(primary, AsyncEngine):
        options["bind"] = read_only_engine(primary)
    return refuse_writes(session_factory(**options))


async def _discard(session: AsyncSession) -> None:
    try:
        await session.invalidate()
    except (SQLAlchemyError, OSError, KeelError):
        _logger.debug("discarding a session on a failed replica failed too", exc_info=True)


def refuse_writes(session: AsyncSession) -> AsyncSession:
    """Make every write through ``session`` a :class:`UnitOfWorkError` before any SQL is sent."""
    sync = session.sync_session
    event.listen(sync, "before_attach", _refuse_attach)
    event.listen(sync, "before_flush", _refuse_flush)
    event.listen(sync, "do_orm_execute", _refuse_write_statements)
    return session


def _refused(what: str) -> UnitOfWorkError:
    return UnitOfWorkError(
        f"a read-only unit of work cannot {what}: open one without read_only=True to write", reason="read_only"
    )


def _refuse_attach(_session: Session, _instance: object) -> None:
    raise _refused("add entities")


def _refuse_flush(_session: Session, _context: Any, _instances: Any) -> None:
    # Only called when there is something to write (a changed, added or deleted entity).
    raise _refused("write changes (flush)")


def _refuse_write_statements(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise _refused("run INSERT, UPDATE or DELETE statements")


def watch_commit_position(session: AsyncSession, connection_driver: Any) -> list[str]:
    """Fetch the primary's WAL position right after ``session`` commits; the list receives it.

    Runs in the commit's own greenlet, on the connection that committed, before
    SQLAlchemy hands it back to the pool: one round trip, no transaction. The
    caller records the position with :func:`remember_commit_position` once
    the commit returned (a context variable set inside the greenlet would
    not reach the caller's context).
    """
    found: list[str] = []

    def fetch(_session: Session) -> None:
        try:
            found.append(str(await_only(connection_driver.fetchval("SELECT pg_current_wal_lsn()::text"))))
        except Exception:  # the commit is durable: failing it now would make it look lost
            _logger.warning("could not read the commit's WAL position: reads after it use the primary", exc_info=True)
            found.append(PRIMARY_ONLY)

    event.listen(session.sync_session, "after_commit", fetch, once=True)
    return found


async def commit_driver(session: AsyncSession) -> Any:
    """The driver connection ``session`` commits on, when it can report WAL positions (asyncpg); else None."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return None
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    return driver if hasattr(driver, "fetchval") else None


def record_commit(found: list[str]) -> None:
    """Remember the position :func:`watch_commit_position` found (the primary when it found none)."""
    remember_commit_position(found[-1] if found else PRIMARY_ONLY)
