"""Every SQLAlchemy event listener keel adds to sessions, flushes and engines, in one place.

Nothing is registered by importing a module. :func:`install` adds the
session-wide listeners once per process; keel calls it wherever a session
of its own could start (``create_engine``, ``create_session_factory``, a
unit of work opening, a repository being built), so a session factory
built by hand gets every behaviour as soon as a unit of work or repository
uses it. Call it yourself only for plain sessions that neither touch.

The listeners, in the order they run:

* ``before_flush``: aggregate-wide optimistic locking
  (:mod:`~keel.infrastructure.database.aggregate_lock`), then the flush
  bookkeeping of the stale-delete check
  (:mod:`~keel.infrastructure.database.stale_deletes`), then the
  column-value check (:mod:`~keel.infrastructure.database.values`);
* ``before_delete`` (every mapper): the stale-delete version check;
* ``do_orm_execute``: the soft-delete filter
  (:mod:`~keel.infrastructure.repository.soft_delete`), from the moment a
  soft-deletable class is mapped.

:func:`install_engine` adds the per-engine ones (connect errors, SQLite
pragmas, in-memory SQLite cancellation, asyncpg timeouts).

The mapping hooks (``mapper_configured``/``after_configured`` in ``orm``,
``aggregate_lock`` and ``soft_delete``) stay where the mapping lives: they
must see every mapper, however early it is configured, and change no
session's behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.pool import PoolResetState

from keel.infrastructure.database import _timeouts, aggregate_lock, stale_deletes, values
from keel.infrastructure.database._translate import connect_error

_logger = logging.getLogger("keel.database")


def _session_listeners() -> list[tuple[Any, str, Callable[..., Any]]]:
    # Imported here: the soft-delete filter lives in the repository package,
    # which imports this one.
    from keel.infrastructure.repository.soft_delete import hide_soft_deleted_rows

    return [
        (Session, "before_flush", aggregate_lock.lock_aggregates),
        (Session, "before_flush", stale_deletes.remember_flush),
        (Session, "before_flush", values.check_flushed_values),
        (Mapper, "before_delete", stale_deletes.lock_and_check_versions),
        (Session, "do_orm_execute", hide_soft_deleted_rows),
    ]


@functools.cache
def install() -> None:
    """Register keel's session, flush and mapper listeners (idempotent: the first call does it).

    The soft-delete filter (``do_orm_execute``) is registered once a
    soft-deletable class is mapped, now or later: until then it could hide
    nothing, and its mere presence makes SQLAlchemy build an execution state
    for every ORM statement of every session.
    """
    from keel.infrastructure.repository.soft_delete import filter_reads_once_needed

    for target, name, listener in _session_listeners():
        if name != "do_orm_execute" and not event.contains(target, name, listener):
            event.listen(target, name, listener)
    filter_reads_once_needed()


def installed() -> bool:
    """Whether :func:`install` has registered the listeners in this process (the soft-delete filter when needed)."""
    from keel.infrastructure.repository.soft_delete import filtering_reads_when_needed

    return filtering_reads_when_needed() and all(
        event.contains(target, name, listener)
        for target, name, listener in _session_listeners()
        if name != "do_orm_execute"
    )


def install_engine(engine: AsyncEngine, *, sqlite: bool, memory_sqlite: bool, asyncpg: bool) -> None:
    """Register the listeners of one engine keel built (see :func:`keel.infrastructure.database.create_engine`)."""
    sync_engine = engine.sync_engine
    event.listen(sync_engine, "do_connect", _connect)
    if asyncpg:
        _timeouts.install(engine)
    if sqlite:
        event.listen(sync_engine, "connect", _sqlite_pragmas)
        event.listen(sync_engine, "handle_error", _end_refused_commit)
        if memory_sqlite:
            event.listen(sync_engine, "handle_error", _keep_memory_connection)
            event.listen(sync_engine.pool, "reset", _reset_memory_connection)


def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
    # A refused or timed-out connect surfaces as a bare OSError from under
    # SQLAlchemy (and a bad login as a driver error): either way callers get
    # DatabaseUnavailableError, wherever the first query happened to run.
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        raise connect_error(exc) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _keep_memory_connection(context: ExceptionContext) -> None:
    """A cancelled statement on in-memory SQLite leaves the connection, and so the database, in place.

    SQLAlchemy treats a cancellation mid-statement as a lost connection and
    closes it, since it cannot know its state. For a server that is safe;
    here the connection *is* the database, and closing it drops every table
    and row. The statement is interrupted instead (so a long query stops now
    rather than holding the connection until it would have finished), and
    the connection stays: the unit of work's rollback, which runs after a
    cancellation too, brings it back to a clean state.
    """
    if not isinstance(context.original_exception, asyncio.CancelledError) or context.connection is None:
        return
    driver_connection = context.connection.connection.driver_connection
    sqlite_connection = getattr(driver_connection, "_conn", None)  # aiosqlite's thread-owned sqlite3.Connection
    if sqlite_connection is not None:
        sqlite_connection.interrupt()  # thread-safe, made for exactly this
    context.is_disconnect = False


def _reset_memory_connection(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    """The pool's rollback-on-return for in-memory SQLite, surviving a cancellation.

    The pool closes a connection whose reset raised anything, a cancellation
    of the returning task included; for this pool that drops the database.
    The rollback is queued on aiosqlite's thread before the wait that the
    cancellation interrupts, so it still runs before any later statement:
    the connection is returned as usual, and the cancellation is requested
    again, to be delivered at the task's next await.
    """
    if state.transaction_was_reset or not state.asyncio_safe:
        return
    try:
        dbapi_connection.rollback()
    except asyncio.CancelledError:
        task = _current_task()
        if task is None:
            raise
        task.uncancel()  # keeps the count right for asyncio.timeout and TaskGroup
        task.cancel()


def _end_refused_commit(context: ExceptionContext) -> None:
    """Roll back a SQLite transaction whose COMMIT failed, as SQLAlchemy believes it ended.

    SQLite keeps the transaction open when COMMIT fails (a deferred foreign
    key, a busy database), while SQLAlchemy counts it as finished and so
    skips the pool's reset: the connection would go back to the pool holding
    the refused rows, for the next unit of work on it to commit with its own.
    """
    if context.statement is not None or context.connection is None or context.is_disconnect:
        return
    fairy = context.connection.connection
    dbapi_connection = fairy.dbapi_connection  # None only once the pool has let go of it
    if dbapi_connection is not None and getattr(fairy.driver_connection, "in_transaction", False):
        try:
            dbapi_connection.rollback()
        except Exception:  # the commit's own error is the one to report
            _logger.warning("rolling back after a refused SQLite COMMIT failed", exc_info=True)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: a synchronous caller
        return None
