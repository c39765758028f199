"""keel's pytest fixtures work in an application's suite under either pytest-asyncio mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = 'pytest_plugins = ["keel.testing.fixtures"]\n'
TESTS = """
import pytest
from sqlalchemy import text

from keel.testing import InMemoryStore


@pytest.mark.asyncio
async def test_session_factory_is_a_factory(keel_session_factory):
    async with keel_session_factory() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


def test_store_is_a_store(keel_store):
    assert isinstance(keel_store, InMemoryStore)


def test_cursor_secret_is_a_string(keel_cursor_secret):
    assert isinstance(keel_cursor_secret, str)
"""


def run_application_suite(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_app.py").write_text(TESTS, encoding="utf-8")
    # An application's own config, not keel's pyproject.toml: rootdir and inifile are the temp project.
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_keel_fixtures_work_in_pytest_asyncio_mode(tmp_path: Path, mode: str) -> None:
    """An application suite using every keel fixture passes in strict mode (the default) and in auto mode."""
    result = run_application_suite(tmp_path, mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
