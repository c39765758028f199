"""Unit tests touch no database: asking for a database fixture or opening a connection fails the test.

Database-backed tests belong in tests/integration or tests/contract. The guard
refuses connections at the point they are opened (SQLAlchemy's ``do_connect``
and the raw ``sqlite3``/``asyncpg`` connects) and also fails the test at teardown,
so a test whose code swallows the refusal still fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine

#: Fixtures of tests/conftest.py (and keel.testing.fixtures) that create or reach a database.
DATABASE_FIXTURES = frozenset(
    {"backend", "database_url", "database_settings", "engine", "session_factory", "postgres_url", "private_postgres"}
    | {"keel_session_factory"}
)


class _Watch:
    """What the running unit test tried to open (None outside unit tests) and the driver connects it wraps."""

    opened: list[str] | None = None
    wrapped: list[tuple[Any, Callable[..., Any]]] = []


class DatabaseInUnitTestError(AssertionError):
    """A unit test opened a database connection."""


_WHERE = "move the test to tests/integration or tests/contract"


def _refuse(what: str) -> None:
    if _Watch.opened is not None:
        _Watch.opened.append(what)
        raise DatabaseInUnitTestError(f"a unit test opened a database connection ({what}): {_WHERE}")


@event.listens_for(Engine, "do_connect")
def _refuse_engine_connection(dialect: Dialect, conn_rec: Any, cargs: Any, cparams: Any) -> None:
    _refuse(f"SQLAlchemy, {dialect.name}")


def _guarded(name: str, connect: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _refuse(name)
        return connect(*args, **kwargs)

    return guarded


def _driver_modules() -> list[Any]:
    """The drivers whose connect functions are refused too (raw connects bypass SQLAlchemy's events)."""
    modules: list[Any] = [sqlite3]
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is in the dev extras
        pass
    else:
        modules.append(asyncpg)
    return modules


def pytest_runtest_setup(item: pytest.Item) -> None:
    used = DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used:
        pytest.fail(f"a unit test uses no database, but this one asks for {', '.join(sorted(used))}: {_WHERE}")
    _Watch.opened = []
    _Watch.wrapped = [(module, module.connect) for module in _driver_modules()]
    for module, connect in _Watch.wrapped:
        module.connect = _guarded(module.__name__, connect)


def _stop_watching() -> list[str]:
    """Put the drivers' connect functions back; what the test opened meanwhile."""
    for module, connect in _Watch.wrapped:
        module.connect = connect
    opened, _Watch.opened, _Watch.wrapped = _Watch.opened or [], None, []
    return opened


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    # The last test's teardown also finalises the session's fixtures (dropping the
    # PostgreSQL test database, say): those connections are not the unit test's.
    opened = _stop_watching() if nextitem is None else []
    try:
        return (yield)
    finally:
        opened += _stop_watching()
        if opened:
            pytest.fail(f"a unit test opened a database connection ({', '.join(opened)}): {_WHERE}", pytrace=False)
