"""Strict settings: unknown KEEL_ variables, normalised environments, statement timeouts, passwords in queries."""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import ConfigurationError
from keel.config import (
    DEV_CURSOR_SECRET,
    TOOLING_VARIABLES,
    DatabaseSettings,
    KeelSettings,
    RepositorySettings,
    settings_reference,
)
from keel.infrastructure.database import create_engine
from keel.infrastructure.database.engine import checked_repository_settings
from keel.infrastructure.repository import cursor

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


@pytest.mark.parametrize(
    ("misspelt", "suggestion"),
    [
        ("KEEL_DATABASE_URL", "KEEL_DATABASE__URL"),
        ("KEEL_DATABSE__URL", "KEEL_DATABASE__URL"),
        ("keel_database_url", "KEEL_DATABASE__URL"),
        ("KEEL_REPOSITORY_CURSOR_SECRET", "KEEL_REPOSITORY__CURSOR_SECRET"),
    ],
)
def test_a_misspelt_variable_is_refused_at_start_up_with_the_nearest_setting(
    monkeypatch: pytest.MonkeyPatch, misspelt: str, suggestion: str
) -> None:
    """Even with KEEL_ENV=production, a KEEL_ variable no setting reads is a ConfigurationError naming it."""
    monkeypatch.setenv("KEEL_ENV", "production")
    monkeypatch.setenv(misspelt, f"postgresql://app:{PASSWORD}@db/shop")
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    assert caught.value.details["variables"] == [misspelt]
    assert f"did you mean {suggestion}?" in str(caught.value)
    assert PASSWORD not in repr(caught.value.to_dict())


def test_a_misspelt_variable_in_an_env_file_is_refused(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """.env and .env.<env> are checked like the environment, beside the values pydantic refuses."""
    (clean_environment / ".env").write_text("KEEL_DATABASE_URL=sqlite:///x.db\nOTHER_TOOL=1\n")
    (clean_environment / ".env.staging").write_text("KEEL_BUS__MAX_ATEMPTS=3\nKEEL_DATABASE__POOL_SIZE=abc\n")
    monkeypatch.setenv("KEEL_ENV", "stage")
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    assert caught.value.details["variables"] == [
        "KEEL_DATABASE__POOL_SIZE",
        "KEEL_BUS__MAX_ATEMPTS",
        "KEEL_DATABASE_URL",
    ]
    assert "did you mean KEEL_BUS__MAX_ATTEMPTS?" in str(caught.value)


def test_an_unknown_variable_inside_a_section_is_reported_once_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic's "extra inputs" error and keel's own check name KEEL_DATABASE__POOLSIZE once, with the fix."""
    monkeypatch.setenv("KEEL_DATABASE__POOLSIZE", "5")
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    assert caught.value.details["variables"] == ["KEEL_DATABASE__POOLSIZE"]
    assert "did you mean KEEL_DATABASE__POOL_SIZE?" in str(caught.value)


def test_keels_tooling_variables_and_whole_sections_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_REQUIRE_SERVICES and the other tooling variables, and KEEL_DATABASE as JSON, start fine."""
    for name in TOOLING_VARIABLES:
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("KEEL_DATABASE", '{"pool_size": 4}')
    assert KeelSettings().database.pool_size == 4


def test_an_application_declares_its_own_variables_by_field_or_by_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A subclass's sections are known, and extra_variables extends the allow-list."""

    class Shop(BaseModel):
        currency: str = Field("USD", description="Prices' currency.")

    class ShopSettings(KeelSettings):
        extra_variables = KeelSettings.extra_variables | {"KEEL_SHOP_DEPLOY_TAG"}
        shop: Shop = Field(default_factory=Shop)

    monkeypatch.setenv("KEEL_SHOP__CURRENCY", "EUR")
    monkeypatch.setenv("KEEL_SHOP_DEPLOY_TAG", "v1")
    assert ShopSettings().shop.currency == "EUR"
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    assert sorted(caught.value.details["variables"]) == ["KEEL_SHOP_DEPLOY_TAG", "KEEL_SHOP__CURRENCY"]


def test_a_subclass_without_a_prefix_checks_no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """With env_prefix="" every variable of the process would look unknown: the check steps aside."""

    class Unprefixed(KeelSettings):
        model_config = {**KeelSettings.model_config, "env_prefix": ""}

    monkeypatch.setenv("KEEL_DATABSE__URL", "sqlite:///x.db")
    assert Unprefixed().env == "development"


def test_no_tooling_variable_is_also_a_setting() -> None:
    """A later setting may not take a tooling variable's name (the allow-list would hide a typo for it)."""
    settings = {item.variable for item in settings_reference()}
    assert not settings & TOOLING_VARIABLES


def test_every_keel_variable_the_tooling_reads_is_a_setting_or_declared() -> None:
    """scripts/, .ci/, benchmarks/ and the test support code only use declared KEEL_ names."""
    sources = [ROOT / ".ci" / "run", ROOT / "tests" / "conftest.py", ROOT / "README.md"]
    for folder in ("scripts", "benchmarks", "tests/support"):
        sources += [path for path in (ROOT / folder).rglob("*") if path.is_file() and path.suffix != ".pyc"]
    used = {name for path in sources for name in re.findall(r"\bKEEL_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    known = {item.variable for item in settings_reference()} | TOOLING_VARIABLES
    sections = {name.rsplit("__", 1)[0] for name in known if "__" in name}
    assert used - known - sections == set()


@pytest.mark.parametrize("spelling", ["production", "Production", "PRODUCTION", "prod", " Prod "])
def test_every_spelling_of_production_refuses_the_development_cursor_secret(
    monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """KEEL_ENV is normalised, so `prod` and `PRODUCTION` are production and the public secret is refused."""
    monkeypatch.setenv("KEEL_ENV", spelling)
    settings = KeelSettings()
    assert settings.env == "production"
    assert settings.is_production
    with pytest.raises(ConfigurationError, match="KEEL_REPOSITORY__CURSOR_SECRET is the development default"):
        checked_repository_settings(settings)
    assert KeelSettings(env=spelling).env == "production"


def test_aliases_select_the_canonical_env_file(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_ENV=PROD reads .env.production, and dev/testing/stage map to their environments."""
    (clean_environment / ".env.production").write_text("KEEL_DATABASE__POOL_SIZE=20\n")
    monkeypatch.setenv("KEEL_ENV", "PROD")
    assert KeelSettings().database.pool_size == 20
    for alias, name in [("dev", "development"), ("Testing", "test"), ("stage", "staging")]:
        monkeypatch.setenv("KEEL_ENV", alias)
        assert KeelSettings().env == name


@pytest.mark.parametrize("source", ["environment", "argument"])
def test_an_unknown_environment_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """KEEL_ENV=qa (or env="qa") names KEEL_ENV and lists the environments keel knows."""
    if source == "environment":
        monkeypatch.setenv("KEEL_ENV", "qa")
    with pytest.raises(ConfigurationError, match="development, test, staging, production") as caught:
        KeelSettings(**({"env": "qa"} if source == "argument" else {}))
    assert caught.value.details["variables"] == ["KEEL_ENV"]


@pytest.fixture
def fresh_warning(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """As if this process had signed no cursor yet; captures keel.repository warnings."""
    cursor._warn_development_secret.cache_clear()
    caplog.set_level(logging.WARNING, logger="keel.repository")
    yield caplog
    cursor._warn_development_secret.cache_clear()


def test_starting_with_the_development_secret_does_not_warn(fresh_warning: pytest.LogCaptureFixture) -> None:
    """Reading settings and checking the secret outside production logs nothing: no cursor was issued."""
    checked_repository_settings(KeelSettings())
    cursor.set_default_cursor_secret(DEV_CURSOR_SECRET)
    assert fresh_warning.records == []


def test_the_first_cursor_signed_with_the_development_secret_warns_once(
    fresh_warning: pytest.LogCaptureFixture,
) -> None:
    """One warning per process when a cursor is really signed with the public secret; none for a real one."""
    state = cursor.CursorState((1,), False, "f")
    cursor.encode_cursor(state, b"a-real-secret")
    assert fresh_warning.records == []
    cursor.encode_cursor(state, DEV_CURSOR_SECRET.encode())
    cursor.encode_cursor(state, DEV_CURSOR_SECRET.encode())
    messages = [record.getMessage() for record in fresh_warning.records]
    assert len(messages) == 1
    assert "KEEL_REPOSITORY__CURSOR_SECRET" in messages[0]
    assert RepositorySettings().cursor_secret.get_secret_value() == DEV_CURSOR_SECRET


@pytest.mark.parametrize("seconds", [0.0004, 0.0009999, 1e-9])
def test_a_statement_timeout_below_one_millisecond_is_refused(seconds: float) -> None:
    """The server counts whole milliseconds: 0.4 ms would silently disable the timeout, so it is refused."""
    with pytest.raises(ConfigurationError, match=r"at least 0\.001 seconds") as caught:
        DatabaseSettings(statement_timeout=seconds)
    assert caught.value.details["variables"] == ["KEEL_DATABASE__STATEMENT_TIMEOUT"]


@pytest.mark.parametrize(("seconds", "sent"), [(0.001, "1"), (0.0016, "2"), (0.03, "30"), (30.0, "30000")])
def test_statement_timeouts_reach_the_server_as_milliseconds_never_zero(seconds: float, sent: str) -> None:
    """The connect arguments carry the rounded milliseconds, and the client-side timeouts."""
    engine = create_engine(DatabaseSettings(url="postgresql://app@db/shop", statement_timeout=seconds))
    args = _connect_args(engine)
    assert args["server_settings"]["statement_timeout"] == sent
    assert (args["timeout"], args["command_timeout"]) == (10.0, 60.0)


def _connect_args(engine: AsyncEngine) -> dict[str, Any]:
    # White-box, to test without a server: the pool's creator closes over the driver's connect arguments.
    return dict(inspect.getclosurevars(engine.sync_engine.pool._creator).nonlocals["cparams"])


def test_a_password_in_the_query_string_is_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """?password= moves into the URL's password: settings repr, the URL, the engine's repr never show it."""
    monkeypatch.setenv("KEEL_DATABASE__URL", f"postgresql://app@db/shop?password={PASSWORD}&sslmode=disable")
    settings = KeelSettings()
    engine = create_engine(settings)
    shown = [
        repr(settings),
        settings.model_dump_json(),
        repr(settings.database.url),
        str(settings.database.url),
        settings.database.url.render_as_string(),
        repr(engine),
        repr(engine.url),
        str(engine.url),
    ]
    for text in shown:
        assert PASSWORD not in text
    assert settings.database.effective_url.password == PASSWORD
    assert dict(settings.database.url.query) == {"sslmode": "disable"}


def test_a_password_both_in_the_url_and_its_query_is_refused() -> None:
    """Two passwords are a configuration mistake naming KEEL_DATABASE__URL, without either value."""
    with pytest.raises(ConfigurationError, match="more than once") as caught:
        DatabaseSettings(url=f"postgresql://app:{PASSWORD}@db/shop?password=other")
    assert caught.value.details["variables"] == ["KEEL_DATABASE__URL"]
    assert PASSWORD not in repr(caught.value.to_dict())
