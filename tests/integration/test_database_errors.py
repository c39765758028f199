"""The translation of real driver exceptions (SQLite, PostgreSQL, refused connections) into keel's errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Executable, insert, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import (
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    StatementTimeoutError,
    UnitOfWorkError,
)
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, is_transient, translate_db_error
from tests.models import Counter

# --- translating real driver exceptions ------------------------------------------------


async def raised_by(engine: AsyncEngine, *statements: Executable | str) -> sa_exc.SQLAlchemyError:
    """Run statements on one connection and return the SQLAlchemy error one of them raises."""
    async with engine.connect() as conn:
        try:
            for statement in statements:
                await conn.execute(text(statement) if isinstance(statement, str) else statement)
        except sa_exc.SQLAlchemyError as exc:
            return exc
    raise AssertionError("the statements did not fail")


async def test_a_duplicate_key_is_a_conflict_without_the_drivers_message(engine: AsyncEngine) -> None:
    """A unique violation becomes ConflictError; the values in the driver's message stay out of details."""
    now = datetime.now(UTC)
    row = {"id": 4242, "value": 0, "version": 1, "created_at": now, "updated_at": now}
    exc = await raised_by(engine, insert(Counter).values(row), insert(Counter).values(row))
    assert isinstance(exc, sa_exc.IntegrityError)
    assert "4242" in str(exc)
    error = translate_db_error(exc, entity="Counter")
    assert isinstance(error, ConflictError)
    assert error.details["entity"] == "Counter"
    assert "4242" not in json.dumps(error.to_dict()) + str(error)


@pytest.mark.postgres
async def test_a_real_serialization_failure_is_a_concurrency_error(postgres_url: str) -> None:
    """SQLSTATE 40001 from two REPEATABLE READ transactions updating one row becomes ConcurrencyError."""
    engine = create_engine(DatabaseSettings(url=postgres_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS core_errors_rows (id int PRIMARY KEY, n int)"))
            await conn.execute(text("DELETE FROM core_errors_rows"))
            await conn.execute(text("INSERT INTO core_errors_rows VALUES (1, 0)"))
        repeatable = engine.execution_options(isolation_level="REPEATABLE READ")
        async with repeatable.connect() as first:
            await first.execute(text("SELECT n FROM core_errors_rows WHERE id = 1"))  # takes the snapshot
            async with engine.begin() as second:
                await second.execute(text("UPDATE core_errors_rows SET n = n + 1 WHERE id = 1"))
            with pytest.raises(sa_exc.DBAPIError) as failure:
                await first.execute(text("UPDATE core_errors_rows SET n = n + 1 WHERE id = 1"))
        error = translate_db_error(failure.value)
        assert isinstance(error, ConcurrencyError)
        assert error.diagnostics["sqlstate"] == "40001"
        assert "sqlstate" not in error.details
        assert is_transient(error)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS core_errors_rows"))
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_serialization_and_deadlock_sqlstates_are_concurrency_errors(postgres_url: str, sqlstate: str) -> None:
    """The server's serialization_failure and deadlock_detected both mean: retry the unit of work."""
    engine = create_engine(DatabaseSettings(url=postgres_url))
    try:
        exc = await raised_by(engine, f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; END $$")
    finally:
        await engine.dispose()
    error = translate_db_error(exc)
    assert isinstance(error, ConcurrencyError)
    assert error.diagnostics["sqlstate"] == sqlstate
    assert "sqlstate" not in json.dumps(error.to_problem())


@pytest.mark.postgres
async def test_a_connection_the_server_terminated_is_database_unavailable(postgres_url: str) -> None:
    """pg_terminate_backend's admin_shutdown, and using the dead connection after it, both mean unavailable."""
    engine = create_engine(DatabaseSettings(url=postgres_url, pool_pre_ping=False))
    try:
        killed = await raised_by(engine, "SELECT pg_terminate_backend(pg_backend_pid())")
        async with engine.connect() as victim:
            pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(sa_exc.DBAPIError) as dead:
                await victim.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    for exc in (killed, dead.value):
        error = translate_db_error(exc)
        assert isinstance(error, DatabaseUnavailableError), exc
        assert is_transient(error)


@pytest.mark.postgres
async def test_a_statement_timeout_is_a_statement_timeout_error_naming_it(postgres_url: str) -> None:
    """A statement the server cancels after statement_timeout is a StatementTimeoutError (a DatabaseError)."""
    engine = create_engine(DatabaseSettings(url=postgres_url, statement_timeout=0.05))
    try:
        exc = await raised_by(engine, "SELECT pg_sleep(5)")
    finally:
        await engine.dispose()
    error = translate_db_error(exc)
    assert type(error) is StatementTimeoutError
    assert isinstance(error, DatabaseError)
    assert error.code == "statement_timeout"
    assert "statement_timeout" in error.message
    assert not is_transient(error)


def test_a_locked_sqlite_database_is_a_concurrency_error(tmp_path: Path) -> None:
    """SQLite's "database is locked" (a competing writer held on past the busy timeout) means retry."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = create_sync_engine(url, isolation_level="AUTOCOMMIT")
    waiter = create_sync_engine(url, connect_args={"timeout": 0.05}, isolation_level="AUTOCOMMIT")
    try:
        with holder.connect() as first, waiter.connect() as second:
            first.execute(text("CREATE TABLE core_locked (id INTEGER PRIMARY KEY)"))
            first.execute(text("BEGIN IMMEDIATE"))
            with pytest.raises(sa_exc.OperationalError) as failure:
                second.execute(text("INSERT INTO core_locked VALUES (1)"))
            first.execute(text("ROLLBACK"))
    finally:
        holder.dispose()
        waiter.dispose()
    assert isinstance(translate_db_error(failure.value), ConcurrencyError)


def sqlite_failure(url: str, sql: str) -> sa_exc.DBAPIError:
    """The SQLAlchemy error SQLite raises for ``sql`` on ``url``."""
    engine = create_sync_engine(url)
    try:
        with pytest.raises(sa_exc.DBAPIError) as failure, engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()
    return failure.value


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM core_never_created", "does not exist (are migrations applied?)"),
        ("SELEC 1", "refused the statement (SQLITE_ERROR)"),
    ],
)
def test_sqlite_mistakes_are_database_errors_not_worth_retrying(tmp_path: Path, sql: str, message: str) -> None:
    """A missing table or bad SQL is reported by SQLite as OperationalError, but nothing a retry would fix."""
    error = translate_db_error(sqlite_failure(f"sqlite:///{tmp_path / 'app.db'}", sql))
    assert type(error) is DatabaseError
    assert message in error.message
    assert "core_never_created" not in error.message
    assert not is_transient(error)


def test_a_read_only_sqlite_database_is_a_database_error(tmp_path: Path) -> None:
    """Writing to a database opened read-only is refused for good, not "unavailable"."""
    path = tmp_path / "app.db"
    setup = create_sync_engine(f"sqlite:///{path}")
    with setup.begin() as conn:
        conn.execute(text("CREATE TABLE core_ro (id INTEGER PRIMARY KEY)"))
    setup.dispose()
    failure = sqlite_failure(f"sqlite:///file:{path}?mode=ro&uri=true", "INSERT INTO core_ro VALUES (1)")
    error = translate_db_error(failure)
    assert type(error) is DatabaseError
    assert "SQLITE_READONLY" in error.message


def test_a_sqlite_file_that_cannot_be_opened_is_database_unavailable(tmp_path: Path) -> None:
    """A database file SQLite cannot open (here: its directory is missing) is unavailable, worth retrying."""
    error = translate_db_error(sqlite_failure(f"sqlite:///{tmp_path / 'missing' / 'app.db'}", "SELECT 1"))
    assert isinstance(error, DatabaseUnavailableError)
    assert is_transient(error)


async def test_a_refused_connection_is_database_unavailable() -> None:
    """The OSError of a refused connect, raw or as raised by keel's engine, is DatabaseUnavailableError."""
    assert isinstance(translate_db_error(ConnectionRefusedError(111, "refused")), DatabaseUnavailableError)
    engine = create_engine(DatabaseSettings(url="postgresql+asyncpg://app@127.0.0.1:1/app"))
    try:
        with pytest.raises(DatabaseUnavailableError, match="could not be reached"):
            async with asyncio.timeout(10), engine.connect():
                pass
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["sslmod=require", "ssl=bogus"])
async def test_a_url_argument_the_driver_refuses_is_a_configuration_error(postgres_url: str, query: str) -> None:
    """A misspelt or invalid URL query argument is a ConfigurationError naming the setting, not a retried outage."""
    engine = create_engine(DatabaseSettings(url=f"{postgres_url}?{query}"))
    try:
        with pytest.raises(ConfigurationError) as raised:
            async with asyncio.timeout(10), engine.connect():
                pass
    finally:
        await engine.dispose()
    assert not is_transient(raised.value)
    assert raised.value.details["variables"] == ["KEEL_DATABASE__URL"]
    if query.startswith("sslmod="):
        assert "'sslmod'" in raised.value.message


@pytest.mark.postgres
async def test_a_statement_in_an_aborted_postgresql_transaction_asks_for_a_rollback(postgres_url: str) -> None:
    """PostgreSQL's "current transaction is aborted" (25P02) is the UnitOfWorkError that says to roll back."""
    engine = create_engine(DatabaseSettings(url=postgres_url))
    try:
        async with engine.connect() as conn:
            with pytest.raises(sa_exc.DBAPIError):
                await conn.execute(text("SELECT 1/0"))
            with pytest.raises(sa_exc.DBAPIError) as aborted:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    error = translate_db_error(aborted.value)
    assert isinstance(error, UnitOfWorkError)
    assert "rollback()" in error.message
    assert error.diagnostics["sqlstate"] == "25P02"
