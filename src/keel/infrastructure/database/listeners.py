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
  (:mod:`~keel.infrastructure.repository.soft_delete`).

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
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapper, Session

from keel.infrastructure.database import _timeouts, aggregate_lock, stale_deletes, values
from keel.infrastructure.database._translate import connect_error


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
    """Register keel's session, flush and mapper listeners (idempotent: the first call does it)."""
    for target, name, listener in _session_listeners():
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)


def installed() -> bool:
    """Whether :func:`install` has registered the listeners in this process."""
    return all(event.contains(target, name, listener) for target, name, listener in _session_listeners())


def install_engine(engine: AsyncEngine, *, sqlite: bool, memory_sqlite: bool, asyncpg: bool) -> None:
    """Register the listeners of one engine keel built (see :func:`keel.infrastructure.database.create_engine`)."""
    sync_engine = engine.sync_engine
    event.listen(sync_engine, "do_connect", _connect)
    if asyncpg:
        _timeouts.install(engine)
    if sqlite:
        event.listen(sync_engine, "connect", _sqlite_pragmas)
        if memory_sqlite:
            event.listen(sync_engine, "handle_error", _keep_memory_connection)


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
