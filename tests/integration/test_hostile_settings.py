"""Settings a careless or hostile operator writes: odd spellings, odd environments, passwords in odd places."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from keel import ConfigurationError
from keel.config import DatabaseSettings, KeelSettings
from keel.infrastructure.database import check_database, create_engine

PASSWORD = "hunter2"
TAIL = "x9Kq-tail"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KEEL_ variable from the outer environment, and a working directory without .env files."""
    for name in list(os.environ):
        if name.upper().startswith("KEEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def everything_shown(settings: KeelSettings | DatabaseSettings, error: BaseException | None = None) -> str:
    parts = [repr(settings), str(settings), settings.model_dump_json()]
    if error is not None:
        parts += [str(error), repr(error)]
    return "\n".join(parts)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{PASSWORD}@{TAIL}@db.internal:5432/orders",
        f"postgresql://app:{PASSWORD}@{TAIL}@[::1]:5432/orders",
        f"postgresql://app:{PASSWORD}@@db.internal/orders",
    ],
)
def test_an_unencoded_at_sign_in_the_password_is_refused_without_showing_any_of_it(url: str) -> None:
    """`user:pa@ss@host` would leave the password's tail in the host, shown in every repr: refused, %40 suggested."""
    with pytest.raises(ConfigurationError, match="%40") as caught:
        DatabaseSettings(url=url)
    shown = str(caught.value) + repr(caught.value) + json.dumps(caught.value.to_problem(500))
    assert PASSWORD not in shown
    assert TAIL not in shown
    assert caught.value.details["variables"] == ["KEEL_DATABASE__URL"]


def test_a_percent_encoded_at_sign_is_the_password_and_is_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """`%40` is the documented way to write `@`: the whole password reaches the driver, none of it is shown."""
    monkeypatch.setenv("KEEL_DATABASE__URL", f"postgresql://app:{PASSWORD}%40{TAIL}@db.internal/orders")
    settings = KeelSettings()
    engine = create_engine(settings)
    shown = everything_shown(settings) + repr(engine) + str(engine.url)
    assert PASSWORD not in shown
    assert TAIL not in shown
    assert settings.database.effective_url.password == f"{PASSWORD}@{TAIL}"
    assert settings.database.url.host == "db.internal"


@pytest.mark.parametrize(
    "line",
    [
        f"KEEL_DATABASE__URL=postgresql://app@db/shop?PASSWORD={PASSWORD}%40{TAIL}",
        f"export KEEL_DATABASE__URL='postgresql://app@db/shop?password={PASSWORD}%40{TAIL}'",
        f'keel_database__url = "postgresql://app@db/shop?Password={PASSWORD}%40{TAIL}"',
    ],
)
def test_a_query_password_in_a_dotenv_file_is_masked_whatever_the_spelling(clean_environment: Path, line: str) -> None:
    """`.env` lines with `export`, quotes, lower case or `PASSWORD=`: read, and the password never shown."""
    (clean_environment / ".env").write_text(line + "\n", encoding="utf-8")
    settings = KeelSettings()
    assert settings.database.effective_url.password == f"{PASSWORD}@{TAIL}"
    assert PASSWORD not in everything_shown(settings)


@pytest.mark.parametrize(
    "line",
    [
        f"KEEL_DATABASE_URL=postgresql://app:{PASSWORD}@db/shop",
        f"export KEEL_DATABSE__URL=postgresql://app:{PASSWORD}@db/shop",
        f"  keel_database___url = postgresql://app:{PASSWORD}@db/shop",
    ],
)
def test_a_misspelt_variable_in_a_dotenv_file_is_refused_without_its_value(clean_environment: Path, line: str) -> None:
    """A `.env` misspelling (one underscore, three, a typo, `export`) is a ConfigurationError that shows no value."""
    (clean_environment / ".env").write_text("KEEL_ENV=production\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings()
    assert PASSWORD not in str(caught.value) + repr(caught.value) + json.dumps(caught.value.to_problem(500))


@pytest.mark.parametrize("spelling", [" production ", "PRODUCTION", "Prod", "prod\n", "pRoD"])
def test_every_spelling_of_production_in_a_dotenv_file_is_production(clean_environment: Path, spelling: str) -> None:
    """KEEL_ENV written in `.env` (not the process environment) is normalised as well."""
    (clean_environment / ".env").write_text(f"KEEL_ENV={spelling!r}\n".replace("'", '"'), encoding="utf-8")
    assert KeelSettings().is_production


@pytest.mark.parametrize("spelling", ["produ\u0441tion", "prod.", "\uff50\uff52\uff4f\uff44", "production-eu", ""])
def test_a_lookalike_environment_is_refused(monkeypatch: pytest.MonkeyPatch, spelling: str) -> None:
    """A Cyrillic 'es', full-width letters, a suffix or an empty KEEL_ENV are ConfigurationErrors, not development."""
    monkeypatch.setenv("KEEL_ENV", spelling)
    with pytest.raises(ConfigurationError):
        KeelSettings()


@pytest.mark.postgres
async def test_a_failed_connection_with_a_query_password_logs_and_reports_no_secret(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused login (wrong user) logs nothing and reports nothing that holds the password."""
    base = postgres_url.rsplit("/", 1)[0].replace("postgres@", "nobody@", 1)
    settings = DatabaseSettings(url=f"{base}/postgres?password={PASSWORD}%40{TAIL}&application_name=hostile")
    engine = create_engine(settings, echo=True)
    with caplog.at_level(logging.DEBUG):
        result = await check_database(engine, timeout=5)
    await engine.dispose()
    assert not result.healthy
    shown = json.dumps(result.to_dict()) + caplog.text + everything_shown(settings)
    assert PASSWORD not in shown
    assert TAIL not in shown
