"""Settings, read from ``KEEL_*`` environment variables and per-environment files.

``KEEL_DATABASE__URL`` sets ``settings.database.url`` (nested with ``__``).
``KEEL_ENV=production`` also reads ``.env.production`` (after ``.env``);
real environment variables win over both files. A ``KEEL_*`` variable that
is no setting is refused (see :mod:`keel._settings_variables`), and
``KEEL_ENV`` is one of :data:`ENVIRONMENTS` (``prod``, ``PRODUCTION`` and
the like are normalised).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from keel._event_bus_settings import EventBusSettings
from keel._settings_variables import ENVIRONMENT_ALIASES as ENVIRONMENT_ALIASES
from keel._settings_variables import ENVIRONMENTS as ENVIRONMENTS
from keel._settings_variables import TOOLING_VARIABLES as TOOLING_VARIABLES
from keel._settings_variables import env_file_paths, normalise_environment, unknown_variables
from keel.cross_cutting.cache import CacheSettings
from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.telemetry._settings import TelemetrySettings
from keel.domain.ports import SecretProvider

ENV_PREFIX = "KEEL_"
NESTED_DELIMITER = "__"
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


#: A deployment environment, normalised from any of its spellings (see :data:`ENVIRONMENT_ALIASES`).
Environment = Annotated[Literal["development", "test", "staging", "production"], BeforeValidator(normalise_environment)]

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


#: Signs pagination cursors when nothing else is configured. Public, so anyone
#: can forge cursors with it: production must set KEEL_REPOSITORY__CURSOR_SECRET
#: (keel refuses this value when KEEL_ENV=production).
DEV_CURSOR_SECRET = "keel-development-cursor-secret-change-me"


class RepositorySettings(BaseModel):
    """Pagination limits and the key that signs keyset cursors."""

    model_config = pydantic.ConfigDict(extra="forbid")

    max_page_size: int = Field(1000, ge=1, description="Largest page a repository serves; larger sizes are refused.")
    default_page_size: int = Field(50, ge=1, description="Page size when the caller gives none.")
    cursor_secret: SecretStr = Field(
        SecretStr(DEV_CURSOR_SECRET),
        description="HMAC key for pagination cursors. The default is public: set a random value in production.",
    )

    @model_validator(mode="after")
    def _sizes(self) -> RepositorySettings:
        if self.default_page_size > self.max_page_size:
            raise ValueError(f"default_page_size ({self.default_page_size}) exceeds max_page_size")
        if not self.cursor_secret.get_secret_value():
            raise ValueError("cursor_secret must not be empty")
        return self


class BusSettings(BaseModel):
    """How the message bus retries handlers that hit a transient error."""

    model_config = pydantic.ConfigDict(extra="forbid")

    max_attempts: int = Field(
        10,
        ge=1,
        description="Attempts per command (first try included) on a concurrency conflict or dropped connection.",
    )
    backoff_initial: float = Field(0.01, ge=0, description="Seconds to wait before the first retry; doubles per retry.")
    backoff_max: float = Field(1.0, ge=0, description="Upper bound of the doubling wait, in seconds.")
    jitter: float = Field(0.05, ge=0, description="Up to this many random seconds added to every wait.")
    event_handler_attempts: int = Field(
        3, ge=1, description="Attempts per event handler on the same errors; its failures are then logged and counted."
    )


class MigrationSettings(BaseModel):
    """Where ``keel db`` finds the application's migrations and models."""

    model_config = pydantic.ConfigDict(extra="forbid")

    directory: str = Field(
        "migrations",
        min_length=1,
        description="The application's Alembic versions directory (relative to the working directory); "
        "`keel db revision` creates it.",
    )
    metadata: str = Field(
        "keel.orm:Base.metadata",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="`module:attribute` of the application's `MetaData` that autogenerate compares with the database.",
    )
    branch: str = Field(
        "app",
        pattern=r"^[A-Za-z_][\w-]*$",
        description="Alembic branch label of the application's migrations (keel's own branch is `keel`).",
    )


class HealthSettings(BaseModel):
    """Liveness and readiness checks (``keel health``, the example app's probes)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    timeout: float = Field(2.0, gt=0, description="Seconds each check may take before it counts as failed.")
    redis_url: str | None = Field(
        None, description="Redis to ping for readiness; unset: the cache's Redis, when the cache uses one."
    )
    outbox_max_backlog: int = Field(
        10_000, ge=0, description="Readiness fails when more outbox messages than this wait to be relayed."
    )


class SecuritySettings(BaseModel):
    """Permissions and automatic audit."""

    model_config = pydantic.ConfigDict(extra="forbid")

    audit: bool = Field(
        True,
        description="Write a `keel_audit` row for every command the container's bus handles "
        "(succeeded, failed or denied).",
    )


class OutboxSettings(BaseModel):
    """The transactional outbox: which events leave, and how the relay moves them (see docs/outbox.md)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Write outbox rows for routed events at each commit.")
    routes: dict[str, str] = Field(
        default_factory=dict,
        description='Event type -> topic, as JSON (`{"Allocated": "line_allocated"}`); routes declared in '
        "the container's `outbox_routes` win.",
    )
    channel: str = Field(
        "keel_outbox", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL NOTIFY channel that wakes the relay."
    )
    listen: bool = Field(True, description="Wake the relay by LISTEN/NOTIFY on PostgreSQL (it polls as well).")
    poll_interval: float = Field(1.0, gt=0, description="Seconds between polls when nothing wakes the relay.")
    batch_size: int = Field(100, ge=1, le=10_000, description="Messages the relay claims per batch.")
    claim_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a batch claimed on SQLite (no row locks) stays reserved for its relay; a relay that "
        "died is replaced after this. PostgreSQL holds row locks instead.",
    )
    max_attempts: int = Field(10, ge=1, description="Publish attempts before a message is parked.")
    backoff_initial: float = Field(1.0, ge=0, description="Seconds before a failed message's first retry; doubles.")
    backoff_max: float = Field(300.0, ge=0, description="Upper bound of the doubling wait, in seconds.")
    jitter: float = Field(0.5, ge=0, description="Up to this many random seconds added to every wait.")
    delete_published: bool = Field(False, description="Delete rows once published instead of marking them.")
    published_retention: float = Field(
        7 * 86400.0, ge=0, description="Seconds published rows are kept before the relay's cleanup deletes them."
    )
    inbox_retention: float = Field(
        7 * 86400.0, ge=0, description="Seconds inbox rows are kept (duplicates older than this are not detected)."
    )
    cleanup_interval: float = Field(3600.0, gt=0, description="Seconds between the relay's cleanups.")


class EventStoreSettings(BaseModel):
    """The event store the container builds (``keel.event_store``)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    backend: Literal["sqlalchemy"] = Field(
        "sqlalchemy", description="`sqlalchemy`: keel's tables in the application's database (PostgreSQL or SQLite)."
    )
    max_event_bytes: int = Field(
        1024 * 1024, ge=1, description="Largest serialised event (its JSON) an append accepts, in bytes."
    )
    projections: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where `keel events` finds the application's projections: `module:attribute` entries "
        "(a `Projection`, a subclass, or a list of them), comma-separated or a JSON list.",
    )
    projection_batch_size: int = Field(100, ge=1, description="Events a projection applies per transaction.")
    projection_poll_interval: float = Field(
        1.0, gt=0, description="Seconds between a projection worker's polls (PostgreSQL also wakes it by NOTIFY)."
    )
    projection_claim_interval: float = Field(
        1.0, gt=0, description="Seconds between a worker's tries to take over projections another worker owns."
    )

    @pydantic.field_validator("projections", mode="before")
    @classmethod
    def _split_projections(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value


class KeelSettings(BaseSettings):
    """All of keel's settings. Applications subclass it to add their own."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    #: ``KEEL_*`` variables accepted though no field reads them (keel's tooling).
    #: A subclass adds its own: ``extra_variables = KeelSettings.extra_variables | {"KEEL_MY_TOOL"}``.
    extra_variables: ClassVar[frozenset[str]] = TOOLING_VARIABLES

    env: Environment = Field(
        "development",
        description="Deployment environment; `prod`, `dev`, `stage`, `testing` and any capitalisation are "
        "accepted and normalised. `KEEL_ENV` in the process env also selects `.env.<env>`.",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    repository: RepositorySettings = Field(default_factory=RepositorySettings)
    migrations: MigrationSettings = Field(default_factory=MigrationSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    event_bus: EventBusSettings = Field(default_factory=EventBusSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    event_store: EventStoreSettings = Field(default_factory=EventStoreSettings)

    def __init__(self, **values: Any) -> None:
        if "_env_file" not in values:
            environment = _process_environment()
            if environment:
                values["_env_file"] = (".env", f".env.{environment}")
        config = type(self).model_config
        unknown = unknown_variables(
            type(self),
            prefix=values.get("_env_prefix") or config.get("env_prefix") or "",
            delimiter=config.get("env_nested_delimiter") or NESTED_DELIMITER,
            allowed=type(self).extra_variables,
            env_files=env_file_paths(values.get("_env_file", config.get("env_file"))),
            encoding=values.get("_env_file_encoding") or config.get("env_file_encoding"),
        )
        try:
            super().__init__(**values)
        except pydantic.ValidationError as exc:
            raise configuration_error(exc, unknown=unknown) from None
        except ConfigurationError as exc:
            # A section (DatabaseSettings) raised its own, already naming its variables.
            if not unknown:
                raise
            raise _merged(list(exc.details.get("errors", [])), unknown) from None
        if unknown:
            raise configuration_error(None, unknown=unknown)

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def _process_environment() -> str | None:
    """``KEEL_ENV`` from the process environment, normalised (it picks the ``.env.<env>`` file)."""
    variable = f"{ENV_PREFIX}ENV"
    raw = next((value for name, value in os.environ.items() if name.upper() == variable), None)
    if not raw:
        return None
    try:
        return normalise_environment(raw)
    except ValueError as exc:
        problem = {"variable": variable, "msg": str(exc), "type": "value_error"}
        raise ConfigurationError(
            f"invalid settings: {variable}: {exc}", variables=[variable], errors=[problem]
        ) from None


def env_var(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a settings field location."""
    # List indexes (a bad URL in ``replicas``) belong to the one variable holding the list.
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in loc if not isinstance(part, int))


def configuration_error(
    exc: pydantic.ValidationError | None,
    prefix: tuple[str, ...] = (),
    *,
    unknown: Sequence[dict[str, str]] = (),
) -> ConfigurationError:
    """Name every offending variable; never echo values (they may be secrets).

    ``prefix`` is where the failing model sits in :class:`KeelSettings`
    (``("database",)`` for a :class:`DatabaseSettings` built on its own).
    ``unknown`` are variables no setting reads; one pydantic also refused
    (an extra key inside a section) is reported once, with its hint.
    """
    errors = exc.errors(include_url=False, include_input=False) if exc is not None else []
    problems = [{"variable": env_var((*prefix, *err["loc"])), "msg": err["msg"], "type": err["type"]} for err in errors]
    return _merged(problems, unknown)


def _merged(problems: list[dict[str, str]], unknown: Sequence[dict[str, str]]) -> ConfigurationError:
    """One error for ``problems`` and ``unknown`` variables, each variable named once (with its hint)."""
    hints: dict[str, dict[str, str] | None] = {problem["variable"].upper(): problem for problem in unknown}
    problems = [hints.pop(problem["variable"].upper(), None) or problem for problem in problems]
    problems += [hint for hint in hints.values() if hint is not None]
    summary = "; ".join(f"{p['variable']}: {p['msg']}" for p in problems)
    return ConfigurationError(
        f"invalid settings: {summary}", variables=[p["variable"] for p in problems], errors=problems
    )


def load_settings(
    *, secrets: SecretProvider | None = None, secret_names: Mapping[str, str] | None = None, **overrides: Any
) -> KeelSettings:
    """Read :class:`KeelSettings` from the environment (overrides win).

    With ``secrets``, every secret setting (``KEEL_DATABASE__PASSWORD``,
    ``KEEL_REPOSITORY__CURSOR_SECRET``, …) the provider holds is taken from it,
    under the variable's name or the one ``secret_names`` maps it to; see
    :func:`secret_values`.
    """
    if secrets is not None:
        overrides = secret_values(KeelSettings, secrets, secret_names, overrides)
    return KeelSettings(**overrides)


def secret_values(
    settings_class: type[BaseModel],
    provider: SecretProvider,
    names: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``overrides`` plus the value of every secret setting of ``settings_class`` that ``provider`` holds.

    A secret setting is a field typed ``SecretStr`` (optional or not), at any
    depth. Each is asked for by its environment variable's name
    (``KEEL_DATABASE__PASSWORD``), or by ``names[variable]`` when given
    (``{"KEEL_DATABASE__PASSWORD": "db-password"}``). A value the provider
    holds wins over the environment and ``.env`` files; one in
    ``overrides`` wins over the provider. For a subclass of
    :class:`KeelSettings`: ``AppSettings(**secret_values(AppSettings, provider))``.
    """
    values: dict[str, Any] = dict(overrides or {})
    for loc in _secret_fields(settings_class):
        variable = env_var(loc)
        target: Any = values
        for part in loc[:-1]:
            section = target.setdefault(part, {})
            if not isinstance(section, dict):
                break  # the caller passed the whole section: it wins
            copy = target[part] = dict(section)
            target = copy
        else:
            if loc[-1] in target:
                continue
            value = provider.get((names or {}).get(variable, variable))
            if value is not None:
                target[loc[-1]] = value
    return _without_empty_sections(values, overrides or {})


def _secret_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(_secret_fields(annotation, (*prefix, name)))
        elif annotation is SecretStr or SecretStr in get_args(annotation):
            found.append((*prefix, name))
    return found


def _without_empty_sections(values: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    # A section created only to look for secrets, and none found: leave it to the environment.
    return {key: value for key, value in values.items() if key in given or value != {}}


@dataclass(frozen=True, slots=True)
class SettingReference:
    """One setting as documented: its variable, type, default and meaning."""

    variable: str
    type: str
    default: str
    description: str


def settings_reference(model: type[BaseModel] = KeelSettings, prefix: tuple[str, ...] = ()) -> list[SettingReference]:
    """Every leaf setting of ``model`` with its environment variable, in declaration order.

    ``docs/configuration.md`` is generated from this (see :func:`settings_table`),
    so the page cannot drift from the code; applications can document their own
    subclass of :class:`KeelSettings` the same way.
    """
    found: list[SettingReference] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(settings_reference(annotation, (*prefix, name)))
            continue
        found.append(
            SettingReference(
                variable=env_var((*prefix, name)),
                type=_type_name(annotation),
                default=_default_text(field.get_default(call_default_factory=True)),
                description=field.description or "",
            )
        )
    return found


def settings_table(model: type[BaseModel] = KeelSettings) -> str:
    """:func:`settings_reference` as a Markdown table."""
    rows = ["| Variable | Type | Default | Meaning |", "|---|---|---|---|"]
    rows += [
        f"| `{s.variable}` | {s.type} | `{s.default}` | {_escape_cell(s.description)} |"
        for s in settings_reference(model)
    ]
    return "\n".join(rows) + "\n"


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(repr(arg) for arg in get_args(annotation))
    if origin is Union or origin is UnionType:
        names = [_type_name(arg) for arg in get_args(annotation) if arg is not type(None)]
        return " \\| ".join(names) + (" (optional)" if type(None) in get_args(annotation) else "")
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, URL):
        return value.render_as_string(hide_password=True)
    if isinstance(value, SecretStr):
        return "(secret)"
    return str(value)


__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEV_CURSOR_SECRET",
    "TOOLING_VARIABLES",
    "BusSettings",
    "CacheSettings",
    "DatabaseSettings",
    "EventBusSettings",
    "HealthSettings",
    "KeelSettings",
    "MigrationSettings",
    "OutboxSettings",
    "RepositorySettings",
    "SecuritySettings",
    "SettingReference",
    "TelemetrySettings",
    "load_settings",
    "secret_values",
    "settings_reference",
    "settings_table",
]
