"""Which database an Alembic environment migrates: keel's URL rule for env.py files."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config

from keel import ConfigurationError
from keel.config import DEFAULT_DATABASE_URL
from keel.infrastructure.database.migrations import alembic_config, database_settings

PLACEHOLDER = "driver://user:pass@localhost/dbname"  # what `alembic init` writes


@pytest.fixture
def ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An alembic.ini in an empty working directory, with no KEEL_DATABASE__* in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("KEEL_DATABASE__URL", "KEEL_DATABASE__PASSWORD", "KEEL_ENV"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "alembic.ini"
    path.write_text("[alembic]\nscript_location = %(here)s/migrations\n", encoding="utf-8")
    return path


def config_with_url(ini: Path, url: str) -> Config:
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", url)
    return config


def test_keel_database_url_wins_over_alembic_inits_placeholder(ini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated `sqlalchemy.url = driver://...` does not shadow KEEL_DATABASE__URL."""
    monkeypatch.setenv("KEEL_DATABASE__URL", "sqlite+aiosqlite:///./from-env.db")
    settings = database_settings(config_with_url(ini, PLACEHOLDER))
    assert settings.url.database == "./from-env.db"


def test_placeholder_alone_means_keels_default_database(ini: Path) -> None:
    """With only the placeholder, env.py migrates the database the application would use."""
    settings = database_settings(config_with_url(ini, PLACEHOLDER))
    assert settings.url.render_as_string() == DEFAULT_DATABASE_URL


def test_keel_database_url_wins_over_a_real_url_in_the_file(ini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL left in alembic.ini cannot send the migrations to another database than the application's."""
    monkeypatch.setenv("KEEL_DATABASE__URL", "sqlite+aiosqlite:///./from-env.db")
    settings = database_settings(config_with_url(ini, "sqlite+aiosqlite:///./from-file.db"))
    assert settings.url.database == "./from-env.db"


def test_a_url_in_the_file_is_used_while_keel_database_url_is_unset(ini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlalchemy.url still works for a project that keeps it, with the other KEEL_DATABASE__* applied."""
    monkeypatch.setenv("KEEL_DATABASE__PASSWORD", "s3cret")
    settings = database_settings(config_with_url(ini, "postgresql://shop@db.example/shop"))
    assert settings.url.drivername == "postgresql+asyncpg"
    assert settings.effective_url.password == "s3cret"


def test_a_broken_url_in_the_file_is_blamed_on_the_file(ini: Path) -> None:
    """The error names sqlalchemy.url in alembic.ini, not KEEL_DATABASE__URL, and never echoes the URL."""
    with pytest.raises(ConfigurationError) as caught:
        database_settings(config_with_url(ini, "postgresql+psycopg2://shop:hunter2@db/shop"))
    assert caught.value.message.startswith(f"sqlalchemy.url in {ini} is not usable")
    assert "synchronous driver" in caught.value.message
    assert caught.value.details["setting"] == "sqlalchemy.url"
    assert "hunter2" not in str(caught.value)


def test_a_url_given_to_keels_alembic_config_wins_over_keel_database_url(
    ini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """upgrade(url=...) migrates the database it was given, whatever the environment says."""
    monkeypatch.setenv("KEEL_DATABASE__URL", "sqlite+aiosqlite:///./from-env.db")
    config = alembic_config(ini, url="sqlite+aiosqlite:///./given.db")
    assert database_settings(config).url.database == "./given.db"
