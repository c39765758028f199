"""Settings, read from ``KEEL_*`` environment variables and per-environment files.

``KEEL_DATABASE__URL`` sets ``settings.database.url`` (nested with ``__``).
``KEEL_ENV=production`` also reads ``.env.production`` (after ``.env``);
real environment variables win over both files. A ``KEEL_*`` variable that
is no setting is refused (see :mod:`keel._settings_variables`), and
``KEEL_ENV`` is one of :data:`ENVIRONMENTS` (``prod``, ``PRODUCTION`` and
the like are normalised).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

from keel._database_settings import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
from keel._database_settings import DatabaseSettings as DatabaseSettings
from keel._event_bus_settings import EventBusSettings
from keel._section_settings import DEV_CURSOR_SECRET as DEV_CURSOR_SECRET
from keel._section_settings import BusSettings as BusSettings
from keel._section_settings import EventStoreSettings as EventStoreSettings
from keel._section_settings import HealthSettings as HealthSettings
from keel._section_settings import MigrationSettings as MigrationSettings
from keel._section_settings import OutboxSettings as OutboxSettings
from keel._section_settings import RepositorySettings as RepositorySettings
from keel._section_settings import SecuritySettings as SecuritySettings
from keel._settings_errors import ENV_PREFIX, NESTED_DELIMITER, configuration_error, env_var, merged_errors
from keel._settings_variables import ENVIRONMENT_ALIASES as ENVIRONMENT_ALIASES
from keel._settings_variables import ENVIRONMENTS as ENVIRONMENTS
from keel._settings_variables import TOOLING_VARIABLES as TOOLING_VARIABLES
from keel._settings_variables import env_file_paths, normalise_environment, unknown_variables
from keel.cross_cutting.cache import CacheSettings
from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.telemetry._settings import TelemetrySettings
from keel.domain.ports import SecretProvider

#: A deployment environment, normalised from any of its spellings (see :data:`ENVIRONMENT_ALIASES`).
Environment = Annotated[Literal["development", "test", "staging", "production"], BeforeValidator(normalise_environment)]


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
            raise merged_errors(list(exc.details.get("errors", [])), unknown) from None
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
