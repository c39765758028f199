"""Engines and session factories built from :class:`keel.config.DatabaseSettings`."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from keel.config import DEV_CURSOR_SECRET, DatabaseSettings, KeelSettings, RepositorySettings
from keel.cross_cutting.error import ConfigurationError, UnitOfWorkError
from keel.infrastructure.database import _timeouts
from keel.infrastructure.database._keel_session import HIDE_SOFT_DELETED as HIDE_SOFT_DELETED
from keel.infrastructure.database.errors import connect_error


def create_engine(settings: KeelSettings | DatabaseSettings | None = None, **overrides: Any) -> AsyncEngine:
    """Build the :class:`AsyncEngine` for ``settings`` (default: from the environment).

    PostgreSQL: a queue pool of ``pool_size`` connections that may grow to
    ``max_connections``, pre-ping (a connection the server killed is replaced
    on checkout instead of failing the next unit of work), recycling,
    ``application_name`` and ``statement_timeout`` set per connection, and
    client-side ``connect_timeout``/``command_timeout``, which hold when the
    server stops answering altogether (frozen, partitioned).

    SQLite: foreign keys on, WAL journal, a busy timeout so concurrent writers
    wait rather than fail. An in-memory database lives in one connection, so
    its pool holds exactly that one: units of work take turns with it (a
    second concurrent one waits up to ``pool_timeout``) instead of sharing it,
    which would mix their transactions.
    """
    db = _database_settings(settings)
    url = db.effective_url
    kwargs: dict[str, Any] = {"echo": db.echo, "pool_pre_ping": db.pool_pre_ping}
    if db.is_sqlite:
        kwargs["connect_args"] = {"timeout": db.sqlite_busy_timeout}
        if _is_memory_sqlite(url.database):
            kwargs["connect_args"]["check_same_thread"] = False
            # No server can drop it, so a ping has nothing to find; and a
            # ping cancelled mid-flight makes the pool close the connection,
            # taking the database with it.
            kwargs["pool_pre_ping"] = False
            # Never replaced while the engine lives: a new connection is a new, empty database.
            kwargs.update(
                poolclass=TurnTakingPool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=db.pool_timeout,
                pool_recycle=-1,
            )
    else:
        kwargs.update(
            pool_size=db.pool_size,
            max_overflow=db.max_connections - db.pool_size,
            pool_timeout=db.pool_timeout,
            pool_recycle=db.pool_recycle,
        )
        if url.get_driver_name() == "asyncpg":
            server_settings = {"application_name": db.application_name}
            if db.statement_timeout:
                # Settings refuse anything below 1 ms, so this never rounds down to 0 (disabled).
                server_settings["statement_timeout"] = str(max(1, round(db.statement_timeout * 1000)))
            kwargs["connect_args"] = {
                "timeout": db.connect_timeout,
                "command_timeout": db.command_timeout or None,
                "server_settings": server_settings,
            }
    kwargs.update(overrides)
    try:
        engine = create_async_engine(url, **kwargs)
    except ImportError as exc:
        raise _missing_driver(url, exc) from None
    event.listen(engine.sync_engine, "do_connect", _connect)
    if url.get_driver_name() == "asyncpg":
        _timeouts.install(engine)
    if db.is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if _is_memory_sqlite(url.database):
            event.listen(engine.sync_engine, "handle_error", _keep_memory_connection)
    return engine


class TurnTakingPool(AsyncAdaptedQueuePool):
    """The one connection of an in-memory SQLite database, taken in turns.

    A task that asks for it while it already holds it (a unit of work opened
    inside another one, say a command sent from inside a handler's open unit
    of work) would wait for itself until ``pool_timeout``, and the bus would
    retry that as a transient failure. It gets a :class:`UnitOfWorkError` at
    once instead.
    """

    _holder: asyncio.Task[Any] | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        task = _current_task()
        if task is not None and task is self._holder:
            raise UnitOfWorkError(
                "this task already holds the in-memory SQLite database's only connection: close the open "
                "unit of work before starting another, or use a SQLite file, which allows several connections"
            )
        record = super()._do_get()
        self._holder = task
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._holder = None
        super()._do_return_conn(record)


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


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: a synchronous caller
        return None


#: ``session.info`` keys keel's session factories set; every session inherits its factory's ``info``.
#: ``HIDE_SOFT_DELETED`` turns the soft-delete filter on and marks the session as keel's (``_keel_session``).
#: The :class:`~keel.config.RepositorySettings` repositories on the session use.
REPOSITORY_SETTINGS = "keel.repository_settings"


def create_session_factory(
    engine: AsyncEngine,
    *,
    repository_settings: KeelSettings | RepositorySettings | None = None,
    **overrides: Any,
) -> async_sessionmaker[AsyncSession]:
    """A session factory for units of work.

    ``expire_on_commit=False`` so aggregates stay readable after commit (an
    async session cannot lazy-load an expired attribute implicitly). Its
    sessions hide soft-deleted rows, and carry ``repository_settings`` (page
    sizes, cursor secret) to the repositories built on them, so two
    factories in one process can differ; without it, repositories use the
    process-wide defaults of ``configure_repositories``. Given whole
    ``KeelSettings``, the development cursor secret is refused under
    ``KEEL_ENV=production``.
    """
    info: dict[str, Any] = {HIDE_SOFT_DELETED: True}
    if repository_settings is not None:
        info[REPOSITORY_SETTINGS] = checked_repository_settings(repository_settings)
    options: dict[str, Any] = {"expire_on_commit": False, "autoflush": True}
    options.update(overrides)
    options["info"] = {**info, **(overrides.get("info") or {})}
    return async_sessionmaker(engine, **options)


def checked_repository_settings(settings: KeelSettings | RepositorySettings) -> RepositorySettings:
    """The repository section of ``settings``, with the cursor secret checked.

    The public development secret is refused when ``settings`` says
    ``KEEL_ENV=production`` (any spelling of it); elsewhere it is allowed,
    and the first cursor signed with it logs a warning (a bare
    ``RepositorySettings`` does not know the environment: no check).
    """
    if isinstance(settings, RepositorySettings):
        return settings
    check_cursor_secret(
        settings.repository.cursor_secret.get_secret_value().encode(), production=settings.is_production
    )
    return settings.repository


def check_cursor_secret(secret: bytes, *, production: bool) -> None:
    """Refuse the public development cursor secret in production.

    Elsewhere it is fine to start with; the warning comes when a cursor is
    actually signed with it (``keel.infrastructure.repository.cursor``), so
    a service that never pages does not log it on every start.
    """
    if production and secret == DEV_CURSOR_SECRET.encode():
        raise ConfigurationError(
            "KEEL_REPOSITORY__CURSOR_SECRET is the development default; set a random secret in production",
            variables=["KEEL_REPOSITORY__CURSOR_SECRET"],
        )


def _database_settings(settings: KeelSettings | DatabaseSettings | None) -> DatabaseSettings:
    if settings is None:
        return KeelSettings().database
    if isinstance(settings, KeelSettings):
        return settings.database
    return settings


#: The extra that installs a driver keel supports.
_DRIVER_EXTRAS = {"asyncpg": "keel-framework[postgres]"}


def _missing_driver(url: URL, exc: ImportError) -> ConfigurationError:
    driver = url.get_driver_name()
    extra = _DRIVER_EXTRAS.get(driver)
    hint = f"pip install {extra!r}" if extra else f"install the {driver!r} package"
    return ConfigurationError(
        f"KEEL_DATABASE__URL uses the {driver!r} driver, which is not installed "
        f"({exc.name or 'its module'} cannot be imported); {hint}",
        variables=["KEEL_DATABASE__URL"],
    )


def _is_memory_sqlite(database: str | None) -> bool:
    return not database or database == ":memory:" or database.startswith("file::memory:")


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
