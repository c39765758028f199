"""No message, repr or log line of settings, engines or errors shows a DSN password or a secret."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from keel import ConfigurationError, DatabaseUnavailableError, KeelError
from keel.config import DatabaseSettings, KeelSettings, load_settings
from keel.infrastructure.database import create_engine, translate_db_error
from keel.security import EnvironmentSecretProvider

PASSWORD = "Sup3r-S3cret-Pw"


def visible(*things: object) -> str:
    """Everything a log line or an error page could show of ``things``."""
    shown: list[str] = []
    for thing in things:
        shown += [str(thing), repr(thing)]
        if isinstance(thing, KeelError):
            shown += [str(thing.to_dict()), str(thing.to_problem(500)), str(thing.diagnostics)]
    return "\n".join(shown)


def test_settings_never_show_the_password_in_the_url_or_the_password_setting() -> None:
    """repr, str and JSON of settings mask both spellings of a DSN password and every SecretStr."""
    settings = KeelSettings(
        database={"url": f"postgresql://app:{PASSWORD}@db.internal/app"},
        repository={"cursor_secret": PASSWORD + "-cursor"},
        _env_file=None,
    )
    separate = DatabaseSettings(url="postgresql://app@db.internal/app", password=PASSWORD)
    assert settings.database.effective_url.password == PASSWORD
    shown = visible(settings, settings.database, separate, settings.model_dump_json(), separate.model_dump())
    assert PASSWORD not in shown


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{PASSWORD}@db@host/app",  # an unencoded '@'
        f"notadb://app:{PASSWORD}@host/app",
        f"postgresql+psycopg2://app:{PASSWORD}@host/app",  # a synchronous driver
    ],
)
def test_an_invalid_url_is_refused_without_echoing_it(url: str) -> None:
    """The configuration error names the variable, never the value."""
    with pytest.raises(ConfigurationError) as caught:
        KeelSettings(database={"url": url}, _env_file=None)
    assert PASSWORD not in visible(caught.value)
    assert "KEEL_DATABASE__URL" in caught.value.message


async def test_a_failed_connection_shows_no_password_in_the_error_or_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Refused connect with echo on: the engine's repr, the keel error and every log record stay clean."""
    settings = load_settings(
        database={"url": "postgresql+asyncpg://app@127.0.0.1:1/app", "echo": True, "connect_timeout": 1},
        secrets=EnvironmentSecretProvider({"KEEL_DATABASE__PASSWORD": PASSWORD}),
        _env_file=None,
    )
    engine = create_engine(settings)
    try:
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(DatabaseUnavailableError) as caught:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            logging.getLogger("keel.test").error("failed: %r on %r (%s)", caught.value, engine, engine.url)
    finally:
        await engine.dispose()
    assert PASSWORD not in visible(caught.value, engine, engine.url, engine.sync_engine)
    assert PASSWORD not in caplog.text
    translated = translate_db_error(caught.value.__cause__ or caught.value)
    assert PASSWORD not in visible(translated)


@pytest.mark.postgres
async def test_a_working_engine_logs_no_password(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """On a real server (trust auth ignores the password) echo and pool logging show the URL masked."""
    url = make_url(postgres_url).set(password=PASSWORD)
    engine = create_engine(DatabaseSettings(url=url, echo=True))
    try:
        with caplog.at_level(logging.DEBUG):
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            logging.getLogger("keel.test").info("engine %r url %s", engine, engine.url)
    finally:
        await engine.dispose()
    assert caplog.records
    assert PASSWORD not in caplog.text
    assert PASSWORD not in visible(engine, engine.url)
