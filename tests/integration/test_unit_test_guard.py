"""The guard of tests/unit/conftest.py: a unit test that asks for a database or opens a connection fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

GUARD = Path(__file__).parents[1] / "unit" / "conftest.py"

SAMPLE_SUITE = """
import sqlite3

import pytest
from sqlalchemy import create_engine, text


@pytest.fixture
def session_factory():
    return object()


def test_asks_for_the_session_factory(session_factory):
    pass


def test_connects_through_sqlalchemy():
    with create_engine("sqlite://").connect() as conn:
        conn.execute(text("SELECT 1"))


def test_connects_and_swallows_the_refusal():
    try:
        sqlite3.connect(":memory:").close()
    except AssertionError:
        pass


def test_builds_an_engine_without_connecting():
    create_engine("sqlite://").dispose()
"""


def run_sample_suite(pytester: pytest.Pytester) -> dict[str, list[tuple[str, str, str]]]:
    """Run the sample suite under the guard: each test's (phase, outcome, message) reports."""
    pytester.makeconftest(GUARD.read_text())
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_sample=SAMPLE_SUITE)
    recorded = pytester.inline_run("-p", "no:randomly", "-p", "no:cacheprovider")
    reports: dict[str, list[tuple[str, str, str]]] = {}
    for report in recorded.getreports("pytest_runtest_logreport"):
        assert isinstance(report, pytest.TestReport)
        name = report.nodeid.rpartition("::")[2]
        reports.setdefault(name, []).append((report.when, report.outcome, report.longreprtext))
    return reports


def failures(reports: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(when, message) for when, outcome, message in reports if outcome == "failed"]


def test_a_unit_test_asking_for_a_database_fixture_fails_before_it_runs(pytester: pytest.Pytester) -> None:
    """Asking for session_factory (or engine, database_url, ...) fails the setup, naming the fixture."""
    [(when, message)] = failures(run_sample_suite(pytester)["test_asks_for_the_session_factory"])
    assert when == "setup"
    assert "asks for session_factory" in message


def test_a_unit_test_opening_a_connection_fails_even_when_it_swallows_the_refusal(pytester: pytest.Pytester) -> None:
    """A connection through SQLAlchemy or a raw driver is refused, and the test fails at teardown regardless."""
    reports = run_sample_suite(pytester)
    through_sqlalchemy = failures(reports["test_connects_through_sqlalchemy"])
    assert [when for when, _ in through_sqlalchemy] == ["call", "teardown"]
    assert "opened a database connection (SQLAlchemy, sqlite)" in through_sqlalchemy[0][1]
    [(when, message)] = failures(reports["test_connects_and_swallows_the_refusal"])
    assert when == "teardown"
    assert "opened a database connection (sqlite3)" in message


def test_what_touches_no_database_passes_and_the_drivers_are_restored(pytester: pytest.Pytester) -> None:
    """Building an engine is fine; after the tests the driver modules' connect functions are the originals."""
    original = sqlite3.connect
    reports = run_sample_suite(pytester)
    assert failures(reports["test_builds_an_engine_without_connecting"]) == []
    assert sqlite3.connect is original


def test_session_fixtures_finalised_after_the_last_unit_test_may_connect(pytester: pytest.Pytester) -> None:
    """When a unit test runs last, the session fixtures torn down with it (a test database dropped) are not blamed."""
    pytester.makeconftest(
        "import sqlite3\nimport pytest\n\n\n@pytest.fixture(scope='session')\ndef database():\n"
        "    yield\n    sqlite3.connect(':memory:').close()\n"
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(**{"a_integration/test_first": "def test_uses_the_database(database):\n    pass\n"})
    pytester.makepyfile(**{"b_unit/conftest": GUARD.read_text(), "b_unit/test_last": "def test_pure():\n    pass\n"})
    recorded = pytester.inline_run("-p", "no:randomly", "-p", "no:cacheprovider")
    recorded.assertoutcome(passed=2)
