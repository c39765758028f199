"""Settings, read from ``KEEL_*`` environment variables and per-environment files.

``KEEL_DATABASE__URL`` sets ``settings.database.url`` (nested with ``__``).
``KEEL_ENV=production`` also reads ``.env.production`` (after ``.env``);
real environment variables win over both files.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from keel.cross_cutting.error import ConfigurationError

ENV_PREFIX = "KEEL_"
NESTED_DELIMITER = "__"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./keel.db"


def _parse_url(value: Any) -> URL:
    if isinstance(value, URL):
        return value
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    try:
        return make_url(str(value))
    except ArgumentError as exc:
        # Never echo the value: it may hold a password.
        raise ValueError("not a database URL (expected e.g. postgresql+asyncpg://user@host/db)") from exc


#: A SQLAlchemy URL; its ``repr``/serialisation hide the password.
DatabaseUrl = Annotated[
    URL,
    BeforeValidator(_parse_url),
    PlainSerializer(lambda url: url.render_as_string(hide_password=True), return_type=str),
]


class DatabaseSettings(BaseModel):
    """How to reach the database. Pool settings apply to server databases, not SQLite."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    url: DatabaseUrl = Field(default_factory=lambda: make_url(DEFAULT_DATABASE_URL))
    #: Overrides the URL's password; keep it out of the URL in production
    #: (``KEEL_DATABASE__PASSWORD`` or a secret file).
    password: SecretStr | None = None
    pool_size: int = Field(10, ge=1)
    max_connections: int = Field(100, ge=1)
    pool_timeout: float = Field(30.0, gt=0)
    pool_recycle: int = Field(1800, ge=-1)
    pool_pre_ping: bool = True
    connect_timeout: float = Field(10.0, gt=0)
    #: Per-statement limit in seconds on PostgreSQL (``statement_timeout``); 0 disables it.
    statement_timeout: float = Field(30.0, ge=0)
    #: How long SQLite waits for a competing writer before giving up.
    sqlite_busy_timeout: float = Field(5.0, gt=0)
    application_name: str = "keel"
    echo: bool = False

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseSettings:
        if self.max_connections < self.pool_size:
            raise ValueError(f"max_connections ({self.max_connections}) is below pool_size ({self.pool_size})")
        return self

    @property
    def effective_url(self) -> URL:
        """The URL with :attr:`password` applied."""
        if self.password is not None:
            return self.url.set(password=self.password.get_secret_value())
        return self.url

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"


class KeelSettings(BaseSettings):
    """All of keel's settings. Applications subclass it to add their own."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: str = "development"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)

    def __init__(self, **values: Any) -> None:
        if "_env_file" not in values:
            environment = os.environ.get(f"{ENV_PREFIX}ENV")
            if environment:
                values["_env_file"] = (".env", f".env.{environment}")
        try:
            super().__init__(**values)
        except pydantic.ValidationError as exc:
            raise configuration_error(exc) from None


def env_var(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a settings field location."""
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in loc)


def configuration_error(exc: pydantic.ValidationError) -> ConfigurationError:
    """Name every offending variable; never echo values (they may be secrets)."""
    problems = [
        {"variable": env_var(tuple(err["loc"])), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    summary = "; ".join(f"{p['variable']}: {p['msg']}" for p in problems)
    return ConfigurationError(
        f"invalid settings: {summary}", variables=[p["variable"] for p in problems], errors=problems
    )


def load_settings(**overrides: Any) -> KeelSettings:
    """Read :class:`KeelSettings` from the environment (overrides win)."""
    return KeelSettings(**overrides)
