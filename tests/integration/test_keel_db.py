"""`keel db`: a new service migrates its models beside keel's branch with no alembic.ini or env.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from keel.cli import cli
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

MODELS = """
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from keel.orm import KeelBase, VersionMixin


class ShopBase(KeelBase):
    pass


class Product(ShopBase, VersionMixin):
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(String(50), primary_key=True)
    stock: Mapped[int]
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
        return
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    yield url
    drop_postgres_database(name)


def keel(service: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m keel` in the service's directory, configured only by environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_") or k == "KEEL_REQUIRE_SERVICES"}
    env |= {"KEEL_DATABASE__URL": url, "KEEL_MIGRATIONS__METADATA": "shop_models:ShopBase.metadata"}
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], cwd=service, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_a_new_service_autogenerates_upgrades_checks_and_downgrades(tmp_path: Path, fresh_url: str) -> None:
    """upgrade, revision --autogenerate, upgrade, check (clean, then drift after a model change), downgrade."""
    service = tmp_path / "shop"
    service.mkdir()
    (service / "shop_models.py").write_text(MODELS, encoding="utf-8")

    assert keel(service, fresh_url, "db", "upgrade").returncode == 0  # keel's branch first
    written = keel(service, fresh_url, "db", "revision", "--autogenerate", "-m", "products")
    assert written.returncode == 0, written.stderr
    (revision,) = (service / "migrations").glob("*_products.py")
    assert "op.create_table(" in revision.read_text(encoding="utf-8")
    assert "branch_labels: str | Sequence[str] | None = ('app',)" in revision.read_text(encoding="utf-8")

    assert keel(service, fresh_url, "db", "upgrade").returncode == 0
    current = keel(service, fresh_url, "db", "current")
    assert "(head)" in current.stdout
    assert "keel_" in current.stdout
    clean = keel(service, fresh_url, "db", "check")
    assert (clean.returncode, "agree" in clean.stdout) == (0, True), clean.stderr

    extra = "    name: Mapped[str | None] = mapped_column(String(20))\n"
    (service / "shop_models.py").write_text(MODELS + extra, encoding="utf-8")
    drift = keel(service, fresh_url, "db", "check")
    assert drift.returncode == 1
    assert "migration_drift" in drift.stderr
    assert "add_column" in drift.stderr
    assert "Traceback" not in drift.stderr

    assert keel(service, fresh_url, "db", "downgrade", "base").returncode == 0
    assert "(head)" not in keel(service, fresh_url, "db", "current").stdout


def test_autogenerate_against_a_database_behind_its_heads_says_to_upgrade(tmp_path: Path) -> None:
    """A revision before `keel db upgrade` is a one-line error naming the fix, not a traceback."""
    service = tmp_path / "shop"
    service.mkdir()
    (service / "shop_models.py").write_text(MODELS, encoding="utf-8")
    result = keel(service, f"sqlite+aiosqlite:///{service / 'shop.db'}", "db", "revision", "--autogenerate", "-m", "x")
    assert result.returncode == 1
    assert "run `keel db upgrade` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_metadata_setting_that_names_nothing_is_a_clear_error(tmp_path: Path) -> None:
    """A module or attribute that does not exist is named in the error."""
    service = tmp_path / "shop"
    service.mkdir()
    (service / "shop_models.py").write_text(MODELS, encoding="utf-8")
    env = {"KEEL_DATABASE__URL": f"sqlite+aiosqlite:///{service / 'shop.db'}"}
    for spec, named in [("no_such_module:Base.metadata", "no_such_module"), ("shop_models:Nope", "'Nope'")]:
        result = subprocess.run(
            [sys.executable, "-m", "keel", "db", "heads"],
            cwd=service,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("KEEL_")},
                **env,
                "KEEL_MIGRATIONS__METADATA": spec,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert named in result.stderr


def test_every_db_command_has_help() -> None:
    """`keel db --help` lists the commands, and each answers --help."""
    runner = CliRunner()
    listing = runner.invoke(cli, ["db", "--help"])
    assert listing.exit_code == 0
    for command in ("upgrade", "downgrade", "current", "revision", "check", "heads"):
        assert command in listing.output
        assert runner.invoke(cli, ["db", command, "--help"]).exit_code == 0


def test_a_setting_pattern_refuses_a_metadata_path_without_an_attribute() -> None:
    """KEEL_MIGRATIONS__METADATA must be module:attribute."""
    from keel.config import MigrationSettings
    from keel.cross_cutting.error import ConfigurationError

    with pytest.raises((ConfigurationError, ValueError)):
        MigrationSettings(metadata="just_a_module")
    assert MigrationSettings().metadata == "keel.orm:Base.metadata"
