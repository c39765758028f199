"""Settings: KEEL_ variables nested with __, per-environment files, typed errors, secrets kept secret."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from keel import ConfigurationError
from keel.config import DatabaseSettings, KeelSettings, load_settings, settings_reference, settings_table
from keel.infrastructure.database import create_engine

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pa55-w0rd-never-shown"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KEEL_ variable from the outer environment, and a working directory without .env files."""
    for name in list(os.environ):
        if name.upper().startswith("KEEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_are_a_local_sqlite_file_and_a_10_to_100_pool() -> None:
    """With nothing set, keel runs on ./keel.db through aiosqlite; PostgreSQL pools 10, up to 100."""
    settings = KeelSettings()
    assert settings.database.url.render_as_string() == "sqlite+aiosqlite:///./keel.db"
    assert settings.database.is_sqlite
    assert (settings.database.pool_size, settings.database.max_connections) == (10, 100)
    assert settings.database.pool_pre_ping is True
    assert settings.env == "development"


def test_environment_variables_use_the_keel_prefix_and_double_underscore_nesting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KEEL_DATABASE__X sets settings.database.x; variables without the prefix are ignored."""
    monkeypatch.setenv("KEEL_DATABASE__URL", "postgresql+asyncpg://app@db.internal:5432/shop")
    monkeypatch.setenv("KEEL_DATABASE__POOL_SIZE", "7")
    monkeypatch.setenv("KEEL_DATABASE__STATEMENT_TIMEOUT", "2.5")
    monkeypatch.setenv("KEEL_DATABASE__ECHO", "true")
    monkeypatch.setenv("DATABASE__POOL_SIZE", "99")
    database = load_settings().database
    assert database.url.host == "db.internal"
    assert database.url.database == "shop"
    assert (database.pool_size, database.statement_timeout, database.echo) == (7, 2.5, True)
    assert not database.is_sqlite


def test_bare_driver_names_get_keels_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """postgres://, postgresql:// and sqlite:// URLs (as platforms hand them out) get asyncpg/aiosqlite."""
    for given, driver in [
        ("postgres://app@db/shop", "postgresql+asyncpg"),
        ("postgresql://app@db/shop", "postgresql+asyncpg"),
        ("sqlite:///local.db", "sqlite+aiosqlite"),
        ("postgresql+asyncpg://app@db/shop", "postgresql+asyncpg"),
    ]:
        monkeypatch.setenv("KEEL_DATABASE__URL", given)
        assert KeelSettings().database.url.drivername == driver


def test_keel_env_selects_an_extra_file_read_after_env(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEEL_ENV=production reads .env then .env.production; real variables win over both files."""
    (clean_environment / ".env").write_text("KEEL_DATABASE__POOL_SIZE=3\nKEEL_DATABASE__POOL_TIMEOUT=4\n")
    (clean_environment / ".env.production").write_text("KEEL_DATABASE__POOL_SIZE=20\nKEEL_DATABASE__ECHO=true\n")
    (clean_environment / ".env.staging").write_text("KEEL_DATABASE__POOL_SIZE=30\n")

    development = KeelSettings().database
    assert (development.pool_size, development.pool_timeout, development.echo) == (3, 4.0, False)

    monkeypatch.setenv("KEEL_ENV", "production")
    production = KeelSettings()
    assert production.env == "production"
    assert (production.database.pool_size, production.database.pool_timeout) == (20, 4.0)
    assert production.database.echo is True

    monkeypatch.setenv("KEEL_DATABASE__POOL_SIZE", "40")
    assert KeelSettings().database.pool_size == 40


def test_a_bad_value_fails_with_a_configuration_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_DATABASE__POOL_SIZE=abc is a ConfigurationError that names KEEL_DATABASE__POOL_SIZE."""
    monkeypatch.setenv("KEEL_DATABASE__POOL_SIZE", "abc")
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    error = caught.value
    assert error.code == "configuration_error"
    assert error.details["variables"] == ["KEEL_DATABASE__POOL_SIZE"]
    assert "KEEL_DATABASE__POOL_SIZE" in str(error)
    assert error.__cause__ is None, "pydantic's error (which may quote values) is not chained"
    assert error.__suppress_context__


def test_every_bad_variable_is_named_at_once(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several mistakes, from the environment and from a file, are reported together."""
    (clean_environment / ".env").write_text("KEEL_DATABASE__CONNECT_TIMEOUT=-1\n")
    monkeypatch.setenv("KEEL_DATABASE__ECHO", "loud")
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    assert sorted(caught.value.details["variables"]) == ["KEEL_DATABASE__CONNECT_TIMEOUT", "KEEL_DATABASE__ECHO"]


def test_a_misspelt_database_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_DATABASE__POOLSIZE is not silently ignored: the error names it."""
    monkeypatch.setenv("KEEL_DATABASE__POOLSIZE", "5")
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    assert caught.value.details["variables"] == ["KEEL_DATABASE__POOLSIZE"]


def test_max_connections_below_pool_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool that could never reach its own size is a configuration error mentioning both settings."""
    monkeypatch.setenv("KEEL_DATABASE__POOL_SIZE", "20")
    monkeypatch.setenv("KEEL_DATABASE__MAX_CONNECTIONS", "10")
    with pytest.raises(ConfigurationError, match=r"max_connections \(10\) is below pool_size \(20\)") as caught:
        KeelSettings()
    assert caught.value.details["variables"] == ["KEEL_DATABASE"]


def test_database_settings_built_directly_fail_with_the_same_error() -> None:
    """DatabaseSettings(...) in code raises ConfigurationError naming the matching variable too."""
    with pytest.raises(ConfigurationError) as caught:
        DatabaseSettings(pool_size="abc")
    assert caught.value.details["variables"] == ["KEEL_DATABASE__POOL_SIZE"]


def test_a_non_url_database_url_is_a_clear_error_that_does_not_echo_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A garbled URL names KEEL_DATABASE__URL, explains the expected shape, and never repeats the value."""
    for garbled in (f"app:{PASSWORD}@db/shop", f"postgresql://app:{PASSWORD}@db:port/shop"):
        monkeypatch.setenv("KEEL_DATABASE__URL", garbled)
        with pytest.raises(ConfigurationError, match="not a database URL") as caught:
            KeelSettings()
        assert caught.value.details["variables"] == ["KEEL_DATABASE__URL"]
        for text in (str(caught.value), repr(caught.value), repr(caught.value.to_dict())):
            assert PASSWORD not in text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"mysql://app:{PASSWORD}@db/shop", "'mysql' is a synchronous driver"),
        (f"postgresql+psycopg2://app:{PASSWORD}@db/shop", "'postgresql+psycopg2' is a synchronous driver"),
        (f"nosuchdb://app:{PASSWORD}@db/shop", "no dialect 'nosuchdb'"),
    ],
)
def test_a_url_without_an_async_driver_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    """A sync or unknown driver is a ConfigurationError naming KEEL_DATABASE__URL, never a raw import error."""
    monkeypatch.setenv("KEEL_DATABASE__URL", url)
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        KeelSettings()
    assert caught.value.details["variables"] == ["KEEL_DATABASE__URL"]
    for text in (str(caught.value), repr(caught.value), repr(caught.value.to_dict())):
        assert PASSWORD not in text


def test_an_async_driver_that_is_not_installed_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """create_engine says which driver is missing and how to install it, without the URL's password."""
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if keel-framework[postgres] were not installed
    settings = DatabaseSettings(url=f"postgresql://app:{PASSWORD}@db/shop")
    with pytest.raises(ConfigurationError, match=re.escape("'asyncpg' driver, which is not installed")) as caught:
        create_engine(settings)
    assert "pip install 'keel-framework[postgres]'" in caught.value.message
    assert caught.value.details["variables"] == ["KEEL_DATABASE__URL"]
    assert PASSWORD not in repr(caught.value.to_dict())


def test_passwords_never_appear_in_repr_str_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """A password in the URL or in KEEL_DATABASE__PASSWORD is masked everywhere but the engine's URL."""
    monkeypatch.setenv("KEEL_DATABASE__URL", f"postgresql+asyncpg://app:{PASSWORD}@db/shop")
    from_url = KeelSettings()
    monkeypatch.setenv("KEEL_DATABASE__URL", "postgresql+asyncpg://app@db/shop")
    monkeypatch.setenv("KEEL_DATABASE__PASSWORD", PASSWORD)
    from_secret = KeelSettings()
    for settings in (from_url, from_secret):
        shown = [
            repr(settings),
            str(settings),
            settings.model_dump_json(),
            repr(settings.model_dump()),
            repr(settings.database),
            str(settings.database.url),
            str(settings.database.effective_url),
        ]
        for text in shown:
            assert PASSWORD not in text
        assert settings.database.effective_url.password == PASSWORD
        assert make_url(settings.database.effective_url.render_as_string(hide_password=False)).password == PASSWORD


def test_the_settings_reference_lists_every_leaf_setting_with_its_variable() -> None:
    """settings_reference walks nested sections and names each variable, type and default."""
    reference = {item.variable: item for item in settings_reference()}
    assert reference["KEEL_DATABASE__POOL_SIZE"].default == "10"
    assert reference["KEEL_DATABASE__URL"].default == "sqlite+aiosqlite:///./keel.db"
    assert reference["KEEL_DATABASE__PASSWORD"].type == "secret (optional)"
    assert reference["KEEL_ENV"].type == "'development' \\| 'test' \\| 'staging' \\| 'production'"
    sections = [
        field.annotation
        for field in KeelSettings.model_fields.values()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]
    expected = len(KeelSettings.model_fields) - len(sections)
    expected += sum(len(section.model_fields) for section in sections)
    assert len(reference) == expected
    assert all(item.description for item in reference.values()), "every setting needs a Field(description=...)"


def test_the_configuration_page_shows_the_generated_table() -> None:
    """docs/configuration.md holds exactly settings_table(), so the page cannot drift from the code."""
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", page, re.DOTALL)
    assert match, "docs/configuration.md lost its settings-table markers"
    assert match.group(1) == settings_table(), (
        "docs/configuration.md is out of date; paste the output of\n"
        "  python -c 'from keel.config import settings_table; print(settings_table(), end=\"\")'\n"
        "between its settings-table markers"
    )
