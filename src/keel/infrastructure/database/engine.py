"""Engines and session factories built from :class:`keel.config.DatabaseSettings`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from keel.config import DatabaseSettings, KeelSettings
from keel.cross_cutting.error import ConfigurationError
from keel.infrastructure.database.errors import connect_error


def create_engine(settings: KeelSettings | DatabaseSettings | None = None, **overrides: Any) -> AsyncEngine:
    """Build the :class:`AsyncEngine` for ``settings`` (default: from the environment).

    PostgreSQL: a queue pool of ``pool_size`` connections that may grow to
    ``max_connections``, pre-ping (a connection the server killed is replaced
    on checkout instead of failing the next unit of work), recycling,
    ``application_name`` and ``statement_timeout`` set per connection.

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
            # Never replaced while the engine lives: a new connection is a new, empty database.
            kwargs.update(
                poolclass=AsyncAdaptedQueuePool,
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
                server_settings["statement_timeout"] = str(int(db.statement_timeout * 1000))
            kwargs["connect_args"] = {"timeout": db.connect_timeout, "server_settings": server_settings}
    kwargs.update(overrides)
    try:
        engine = create_async_engine(url, **kwargs)
    except ImportError as exc:
        raise _missing_driver(url, exc) from None
    event.listen(engine.sync_engine, "do_connect", _connect)
    if db.is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_session_factory(engine: AsyncEngine, **overrides: Any) -> async_sessionmaker[AsyncSession]:
    """A session factory for units of work.

    ``expire_on_commit=False`` so aggregates stay readable after commit (an
    async session cannot lazy-load an expired attribute implicitly).
    """
    options: dict[str, Any] = {"expire_on_commit": False, "autoflush": True}
    options.update(overrides)
    return async_sessionmaker(engine, **options)


def _database_settings(settings: KeelSettings | DatabaseSettings | None) -> DatabaseSettings:
    if settings is None:
        return KeelSettings().database
    if isinstance(settings, KeelSettings):
        return settings.database
    return settings


#: The extra that installs a driver keel supports.
_DRIVER_EXTRAS = {"asyncpg": "keel[postgres]"}


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
