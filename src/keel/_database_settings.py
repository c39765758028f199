"""The ``KEEL_DATABASE__*`` section of :class:`keel.config.KeelSettings`: URLs, pool, replicas.

URL parsing (bare backend names, percent-encoding, async drivers) lives beside the
section it serves; :mod:`keel.config` re-exports :class:`DatabaseSettings`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from keel._settings_errors import configuration_error

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./keel.db"


#: Bare backend names (as PaaS providers hand them out) mapped to the async driver keel uses.
ASYNC_DRIVERS = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def _parse_url(value: Any) -> URL:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    try:
        url = value if isinstance(value, URL) else make_url(str(value))
    except (ArgumentError, ValueError):
        if _authority(str(value)).count("@") > 1:
            raise ValueError(_UNENCODED_AT) from None
        # Never echo the value (nor the parser's message, which quotes it): it may hold a password.
        raise ValueError("not a database URL (expected e.g. postgresql+asyncpg://user@host/db)") from None
    if url.host and "@" in url.host:
        # The parser split the password at its first '@': the rest would be
        # the "host", shown unmasked in every repr and log line.
        raise ValueError(_UNENCODED_AT)
    driver = ASYNC_DRIVERS.get(url.drivername)
    url = url.set(drivername=driver) if driver else url
    _require_async_dialect(url)
    return _password_out_of_query(url)


_UNENCODED_AT = "an '@' in the user name or password must be percent-encoded as %40"


def _authority(raw: str) -> str:
    """The ``user:password@host:port`` part of a URL string (roughly: it only has to count '@')."""
    _, _, rest = raw.partition("://")
    return rest.split("?", 1)[0].rsplit("/", 1)[0]


def _password_out_of_query(url: URL) -> URL:
    # SQLAlchemy masks only the password of the URL's userinfo (repr, str,
    # error messages, logs); asyncpg also takes ``?password=``, which would
    # then show wherever the URL does. Moved into the userinfo, it is masked.
    keys = [key for key in url.query if key.lower() == "password"]
    if not keys:
        return url
    values = [value for key in keys for value in _query_values(url.query[key])]
    if url.password is not None or len(values) != 1:
        raise ValueError("the password is given more than once (in the URL and in its query string)")
    return url.difference_update_query(keys).set(password=values[0])


def _query_values(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def _require_async_dialect(url: URL) -> None:
    # Only the dialect is loaded here, not the driver: a driver that is not
    # installed is reported by create_engine, when it is needed.
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"SQLAlchemy has no dialect {url.drivername!r}") from None
    if not dialect.get_async_dialect_cls(url).is_async:
        raise ValueError(
            f"{url.drivername!r} is a synchronous driver; keel needs an async one "
            "(postgresql+asyncpg://, sqlite+aiosqlite://)"
        )


#: A SQLAlchemy URL; its ``repr``/serialisation hide the password. ``NoDecode``:
#: pydantic-settings would otherwise take the URL (a named tuple) for JSON.
DatabaseUrl = Annotated[
    URL,
    NoDecode,
    BeforeValidator(_parse_url),
    PlainSerializer(lambda url: url.render_as_string(hide_password=True), return_type=str),
]


def _parse_optional_url(value: Any) -> URL | None:
    return None if value is None or value == "" else _parse_url(value)


def _split_urls(value: Any) -> Any:
    """A JSON list, or comma-separated URLs (as ``KEEL_DATABASE__REPLICAS`` is usually written)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("not a JSON list of database URLs") from None  # never echo: it may hold passwords
    return [part.strip() for part in text.split(",") if part.strip()]


#: An optional :data:`DatabaseUrl` (unset or empty: ``None``).
OptionalDatabaseUrl = Annotated[
    URL | None,
    NoDecode,
    BeforeValidator(_parse_optional_url),
    PlainSerializer(lambda url: None if url is None else url.render_as_string(hide_password=True)),
]

#: Several :data:`DatabaseUrl`; each one's password is masked like the primary's.
DatabaseUrls = Annotated[list[DatabaseUrl], NoDecode, BeforeValidator(_split_urls)]


class DatabaseSettings(BaseModel):
    """How to reach the database. Pool settings apply to server databases, not SQLite."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    url: DatabaseUrl = Field(
        default_factory=lambda: make_url(DEFAULT_DATABASE_URL),
        description="SQLAlchemy URL; bare `postgresql://` and `sqlite://` get their async driver.",
    )
    password: SecretStr | None = Field(
        None, description="Overrides the URL's password, so the URL itself can be logged or shared."
    )
    pool_size: int = Field(10, ge=1, description="Connections kept open (PostgreSQL).")
    max_connections: int = Field(100, ge=1, description="Upper bound of open connections, pool included (PostgreSQL).")
    pool_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a free connection before failing.")
    pool_recycle: int = Field(1800, ge=-1, description="Seconds after which a connection is replaced; -1 never.")
    pool_pre_ping: bool = Field(
        True, description="Test a connection on checkout, so one the server dropped is replaced, not used."
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds allowed to open a connection (PostgreSQL).")
    statement_timeout: float = Field(
        30.0,
        ge=0,
        description="Seconds a statement may run before the server cancels it (PostgreSQL); 0 disables, "
        "otherwise at least 0.001 (the server counts whole milliseconds).",
    )
    command_timeout: float = Field(
        60.0,
        ge=0,
        description="Seconds the client waits for any answer from the server before giving the connection up "
        "(PostgreSQL); holds when the server is frozen or cut off, where `statement_timeout` cannot. "
        "Keep it above `statement_timeout`; 0 disables.",
    )
    sqlite_busy_timeout: float = Field(
        5.0, gt=0, description="Seconds SQLite waits for a competing writer before giving up."
    )
    application_name: str = Field(
        "keel", description="Shown in `pg_stat_activity`, so operators can tell services apart (PostgreSQL)."
    )
    echo: bool = Field(False, description="Log every SQL statement (development only).")
    replicas: DatabaseUrls = Field(
        default_factory=list,
        description="Read replicas (comma-separated URLs or a JSON list) for read-only units of work; a replica "
        "URL without a password uses `password`. See docs/scaling.md.",
    )
    read_your_writes_timeout: float = Field(
        2.0,
        ge=0,
        description="Seconds a read-only unit of work waits, after a commit in the same request/task, for a "
        "replica to replay it before reading from the primary instead; 0 reads from the primary at once.",
    )
    replica_health_interval: float = Field(
        5.0, gt=0, description="Seconds a replica's health (and lag) is cached before it is checked again."
    )
    replica_health_timeout: float = Field(
        1.0, gt=0, description="Seconds a replica's health check may take before the replica counts as down."
    )
    pgbouncer: bool = Field(
        False,
        description="The URL goes through a transaction-mode pooler (PgBouncer): no prepared-statement caches, "
        "no startup `statement_timeout`. LISTEN needs `direct_url`.",
    )
    direct_url: OptionalDatabaseUrl = Field(
        None,
        description="Session-mode URL straight to the primary, for LISTEN/NOTIFY (outbox relay, projections) when "
        "`url` goes through a transaction pooler; default: `url`.",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except pydantic.ValidationError as exc:
            raise configuration_error(exc, prefix=("database",)) from None

    @field_validator("statement_timeout")
    @classmethod
    def _whole_milliseconds(cls, value: float) -> float:
        # PostgreSQL takes milliseconds: 0.0004 s would become 0, which disables the timeout.
        if 0 < value < 0.001:
            raise ValueError("must be 0 (disabled) or at least 0.001 seconds (1 ms)")
        return value

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
    def effective_replica_urls(self) -> list[URL]:
        """The replicas' URLs; one without a password of its own gets :attr:`password`."""
        if self.password is None:
            return list(self.replicas)
        secret = self.password.get_secret_value()
        return [url if url.password is not None else url.set(password=secret) for url in self.replicas]

    @property
    def effective_direct_url(self) -> URL:
        """:attr:`direct_url` (or :attr:`url`), with :attr:`password` applied when it has none of its own."""
        if self.direct_url is None:
            return self.effective_url
        if self.password is not None and self.direct_url.password is None:
            return self.direct_url.set(password=self.password.get_secret_value())
        return self.direct_url

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"
