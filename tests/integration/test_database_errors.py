"""keel's error hierarchy, and the translation of real driver exceptions into it."""

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

import keel
from keel import (
    AuthorizationError,
    CacheError,
    CheckViolationError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    DomainError,
    ForeignKeyViolationError,
    InfrastructureError,
    KeelError,
    NotFoundError,
    NotNullViolationError,
    PublishError,
    UnitOfWorkError,
    ValidationError,
)
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, is_transient, translate_db_error
from tests.models import Counter

#: Codes are part of the API (clients match on them): changing one is a breaking change.
STABLE_CODES = {
    KeelError: "keel_error",
    DomainError: "domain_error",
    NotFoundError: "not_found",
    ConcurrencyError: "concurrency_conflict",
    ConflictError: "conflict",
    ConstraintViolationError: "constraint_violation",
    CheckViolationError: "check_violation",
    NotNullViolationError: "not_null_violation",
    ForeignKeyViolationError: "foreign_key_violation",
    ValidationError: "validation_error",
    AuthorizationError: "authorization_denied",
    UnitOfWorkError: "unit_of_work_error",
    ConfigurationError: "configuration_error",
    InfrastructureError: "infrastructure_error",
    DatabaseError: "database_error",
    DatabaseUnavailableError: "database_unavailable",
    PublishError: "publish_error",
    CacheError: "cache_error",
}


def test_error_codes_are_stable_and_unique() -> None:
    """Each error class keeps its documented code, and no two classes share one."""
    assert {cls: cls.code for cls in STABLE_CODES} == STABLE_CODES
    assert len(set(STABLE_CODES.values())) == len(STABLE_CODES)


def test_every_public_error_is_in_the_hierarchy() -> None:
    """Every exception keel exports derives from KeelError, split into domain and infrastructure errors."""
    exported = {getattr(keel, name) for name in keel.__all__}
    errors = {obj for obj in exported if isinstance(obj, type) and issubclass(obj, BaseException)}
    assert set(STABLE_CODES) <= errors
    for cls in errors:
        assert issubclass(cls, KeelError), f"{cls.__name__} is exported but is not a KeelError"
        parent = cls.__mro__[1]
        assert cls is KeelError or cls.code != parent.code, f"{cls.__name__} needs a code of its own"
    assert issubclass(NotFoundError, DomainError)
    for violation in (ConflictError, CheckViolationError, NotNullViolationError, ForeignKeyViolationError):
        assert issubclass(violation, ConstraintViolationError)
    assert issubclass(DatabaseUnavailableError, InfrastructureError)
    assert not issubclass(InfrastructureError, DomainError)


def test_str_shows_the_code_then_the_message() -> None:
    """str() is "[code] message"; without a message, the class docstring's first line is used."""
    assert str(NotFoundError(entity="Product", id="LAMP")) == "[not_found] Product 'LAMP' not found"
    assert str(ConflictError()) == "[conflict] The change conflicts with existing data (for example a unique key)."
    assert str(KeelError("plain")) == "[keel_error] plain"


def test_errors_carry_structured_json_ready_details() -> None:
    """Entity, id and version are attributes and details; to_dict() serialises as JSON."""
    error = ConcurrencyError(entity="Product", id=("LAMP", 2), version=3)
    assert (error.entity, error.id, error.version) == ("Product", ("LAMP", 2), 3)
    assert error.to_dict() == {
        "code": "concurrency_conflict",
        "message": "Product ('LAMP', 2) was changed by someone else (held version 3)",
        "details": {"entity": "Product", "id": ["LAMP", 2], "version": 3},
    }
    assert json.loads(json.dumps(error.to_dict())) == error.to_dict()
    invalid = ValidationError("bad", errors=[{"loc": ["qty"], "msg": "must be > 0", "type": "greater_than"}])
    assert invalid.details == {"errors": invalid.errors}
    assert "ValidationError(code='validation_error'" in repr(invalid)


def test_to_problem_gives_rfc_9457_members_without_diagnostics() -> None:
    """to_problem() has type, title, status, detail, instance, code and details; diagnostics stay out."""
    error = ConflictError(
        "a row with the same t.code already exists", constraint="uq_t_code", table="t", columns=["code"]
    )
    error.diagnostics["sqlstate"] = "23505"
    assert error.to_problem(409, instance="/things") == {
        "type": "urn:keel:problem:conflict",
        "title": "The change conflicts with existing data (for example a unique key).",
        "status": 409,
        "detail": "a row with the same t.code already exists",
        "instance": "/things",
        "code": "conflict",
        "details": {"constraint": "uq_t_code", "table": "t", "columns": ["code"]},
    }
    assert "23505" in repr(error)
    assert "23505" not in str(error) + json.dumps(error.to_dict())
    assert UnitOfWorkError("closed").to_problem() == {
        "type": "urn:keel:problem:unit_of_work_error",
        "title": UnitOfWorkError.default_message(),
        "detail": "closed",
        "code": "unit_of_work_error",
    }


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
async def test_a_statement_timeout_is_a_database_error_naming_it(postgres_url: str) -> None:
    """A statement the server cancels after statement_timeout is reported as such."""
    engine = create_engine(DatabaseSettings(url=postgres_url, statement_timeout=0.05))
    try:
        exc = await raised_by(engine, "SELECT pg_sleep(5)")
    finally:
        await engine.dispose()
    error = translate_db_error(exc)
    assert type(error) is DatabaseError
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


def test_what_is_not_a_database_error_is_left_alone() -> None:
    """translate_db_error returns None for foreign exceptions and keel errors unchanged."""
    assert translate_db_error(ValueError("x")) is None
    not_found = NotFoundError(entity="Product", id=1)
    assert translate_db_error(not_found) is not_found
    wrapped = sa_exc.StatementError("bind failed", "SELECT 1", {}, not_found)
    assert translate_db_error(wrapped) is not_found
    assert isinstance(translate_db_error(sa_exc.TimeoutError()), DatabaseUnavailableError)
    assert not is_transient(not_found)


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
