"""Engines and session factories built from :class:`keel.config.DatabaseSettings`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from keel.config import DatabaseSettings, KeelSettings, RepositorySettings
from keel.cross_cutting.error import ConfigurationError, UnitOfWorkError
from keel.infrastructure.database import listeners
from keel.infrastructure.database.replicas import REPLICA_ROUTER, ReplicaRouter

# The repository settings' home is ``keel.infrastructure.repository.settings``;
# these names stay importable from here.
from keel.infrastructure.repository.settings import HIDE_SOFT_DELETED as HIDE_SOFT_DELETED
from keel.infrastructure.repository.settings import REPOSITORY_SETTINGS as REPOSITORY_SETTINGS
from keel.infrastructure.repository.settings import check_cursor_secret as check_cursor_secret
from keel.infrastructure.repository.settings import checked_repository_settings as checked_repository_settings


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
                # Reset by listeners._reset_memory_connection instead, which a cancellation cannot turn into a close.
                pool_reset_on_return=None,
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
            # PgBouncer refuses startup parameters it does not track (statement_timeout among them):
            # behind it the timeout belongs on the role or database (docs/scaling.md).
            if db.statement_timeout and not db.pgbouncer:
                # Settings refuse anything below 1 ms, so this never rounds down to 0 (disabled).
                server_settings["statement_timeout"] = str(max(1, round(db.statement_timeout * 1000)))
            kwargs["connect_args"] = {
                "timeout": db.connect_timeout,
                "command_timeout": db.command_timeout or None,
                "server_settings": server_settings,
                **(TRANSACTION_POOLER_CONNECT_ARGS if db.pgbouncer else {}),
            }
    kwargs.update(overrides)
    try:
        engine = create_async_engine(url, **kwargs)
    except ImportError as exc:
        raise _missing_driver(url, exc) from None
    listeners.install()
    listeners.install_engine(
        engine,
        sqlite=db.is_sqlite,
        memory_sqlite=db.is_sqlite and _is_memory_sqlite(url.database),
        asyncpg=url.get_driver_name() == "asyncpg",
    )
    return engine


def _unique_statement_name() -> str:
    return f"__keel_{uuid.uuid4().hex}__"


#: asyncpg settings for a URL that goes through a transaction-mode pooler, where consecutive
#: transactions of one client connection may run on different server connections: no
#: statement caches (asyncpg's nor SQLAlchemy's), and names no other client can collide with
#: for the statements SQLAlchemy's dialect still prepares within a transaction.
TRANSACTION_POOLER_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unique_statement_name,
}


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


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: a synchronous caller
        return None


def create_replica_router(settings: KeelSettings | DatabaseSettings | None = None) -> ReplicaRouter | None:
    """A :class:`ReplicaRouter` over ``KEEL_DATABASE__REPLICAS`` (``None`` when there are none).

    Each replica gets an engine with the primary's pool and timeout settings.
    Pass the router to :func:`create_session_factory` (``replicas=``); dispose
    it (``await router.dispose()``) with the primary's engine.
    """
    db = _database_settings(settings)
    urls = db.effective_replica_urls
    if not urls:
        return None
    engines = [create_engine(db.model_copy(update={"url": url, "password": None, "replicas": []})) for url in urls]
    return ReplicaRouter(
        engines,
        read_your_writes_timeout=db.read_your_writes_timeout,
        health_interval=db.replica_health_interval,
        health_timeout=db.replica_health_timeout,
    )


def create_session_factory(
    engine: AsyncEngine,
    *,
    repository_settings: KeelSettings | RepositorySettings | None = None,
    replicas: ReplicaRouter | None = None,
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
    ``KEEL_ENV=production``. ``replicas`` (from :func:`create_replica_router`)
    is where read-only units of work on this factory read.
    """
    listeners.install()
    info: dict[str, Any] = {HIDE_SOFT_DELETED: True}
    if replicas is not None:
        info[REPLICA_ROUTER] = replicas
    if repository_settings is not None:
        info[REPOSITORY_SETTINGS] = checked_repository_settings(repository_settings)
    options: dict[str, Any] = {"expire_on_commit": False, "autoflush": True}
    options.update(overrides)
    options["info"] = {**info, **(overrides.get("info") or {})}
    return async_sessionmaker(engine, **options)


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
