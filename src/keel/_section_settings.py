"""The smaller sections of :class:`keel.config.KeelSettings`: repository, bus, migrations,
health, security, outbox and event store (re-exported by :mod:`keel.config`)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import NoDecode

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
