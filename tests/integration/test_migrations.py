"""Alembic: keel's branch beside the examples', on a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Table, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from keel import ConfigurationError
from keel.infrastructure.database import migrations
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"
#: Imported at collection, like alembic/env.py does: the shared test database
#: is created from Base.metadata once per session, so every table must be
#: declared before the first test runs, not halfway through.
EXAMPLE_MODELS = [
    importlib.import_module(f"examples.{path.parent.name}.orm") for path in sorted((ROOT / "examples").glob("*/orm.py"))
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The async URL of a database nothing has touched yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    try:
        yield url
    finally:
        drop_postgres_database(name)


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrations.alembic_config(ALEMBIC_INI))


def keel_head() -> str:
    revision = script().get_revision("keel@head")
    assert revision is not None
    return revision.revision


def schema(url: str) -> tuple[set[str], set[str]]:
    """(tables, revisions in alembic_version) of the database at ``url``."""
    return asyncio.run(read_schema(url))


async def read_schema(url: str) -> tuple[set[str], set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_read_schema)
    finally:
        await engine.dispose()


def _read_schema(conn: Connection) -> tuple[set[str], set[str]]:
    tables = set(inspect(conn).get_table_names())
    versions: set[str] = set()
    if "alembic_version" in tables:
        versions = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    return tables - {"alembic_version"}, versions


def example_tables() -> set[str]:
    """The tables declared by every ``examples/*/orm.py`` (what their migrations must create)."""
    names: set[str] = set()
    for module in EXAMPLE_MODELS:
        for value in vars(module).values():
            if isinstance(value, Table):
                names.add(value.name)
            elif isinstance(value, type) and value.__module__ == module.__name__ and hasattr(value, "__table__"):
                names.add(value.__table__.name)
    return names


def test_keel_migrations_ship_inside_the_package() -> None:
    """The `keel` branch's files resolve through the package resource Alembic is given."""
    package, _, folder = migrations.VERSIONS_LOCATION.partition(":")
    versions = resources.files(package) / folder
    assert any(entry.name.startswith("keel_0001") for entry in versions.iterdir())
    bases = [script().get_revision(rev) for rev in script().get_bases()]
    assert "keel" in {label for rev in bases if rev is not None for label in rev.branch_labels}


def test_upgrade_heads_then_downgrade_base_on_a_fresh_database(fresh_url: str) -> None:
    """`upgrade heads` reaches every branch head (keel's included); `downgrade base` empties the schema."""
    migrations.upgrade(fresh_url, config_path=ALEMBIC_INI)
    tables, versions = schema(fresh_url)
    assert versions == set(script().get_heads())
    assert keel_head() in versions
    assert example_tables() <= tables

    command.downgrade(migrations.alembic_config(ALEMBIC_INI, fresh_url), "base")
    assert schema(fresh_url) == (set(), set())


def test_keel_head_upgrades_on_its_own(fresh_url: str) -> None:
    """`keel@head` migrates keel's branch and touches no example's tables."""
    migrations.upgrade(fresh_url, config_path=ALEMBIC_INI, revision="keel@head")
    tables, versions = schema(fresh_url)
    assert versions == {keel_head()}
    assert not tables & example_tables()


def test_models_and_migrations_do_not_drift(fresh_url: str) -> None:
    """After `upgrade heads`, `alembic check` (autogenerate) finds nothing to do.

    Run in a subprocess: this process's metadata also holds test-only tables.
    """
    env = {**os.environ, "KEEL_DATABASE__URL": fresh_url}
    for args in (["upgrade", "heads"], ["check"]):
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"alembic {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_upgrade_refuses_to_run_inside_an_event_loop(tmp_path: Path) -> None:
    """Calling the blocking helper from a coroutine is a clear error, not a hang or a nested-loop crash."""

    async def main() -> None:
        migrations.upgrade(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", config_path=ALEMBIC_INI)

    with pytest.raises(ConfigurationError, match="to_thread"):
        asyncio.run(main())
    assert not (tmp_path / "x.db").exists()


async def test_upgrade_runs_from_a_worker_thread(tmp_path: Path) -> None:
    """From async code, `asyncio.to_thread(upgrade, ...)` is the way, and it works."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'threaded.db'}"
    await asyncio.to_thread(migrations.upgrade, url, config_path=ALEMBIC_INI, revision="keel@head")
    assert (await read_schema(url))[1] == {keel_head()}


def test_a_missing_alembic_ini_is_a_configuration_error(tmp_path: Path) -> None:
    """A wrong config path names the file instead of failing deep inside Alembic."""
    with pytest.raises(ConfigurationError, match=r"nowhere\.ini"):
        migrations.upgrade(config_path=tmp_path / "nowhere.ini")
