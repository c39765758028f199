"""Database plumbing: engines, session factories, ORM helpers, error translation."""

from __future__ import annotations

# Registers the before_flush listener that extends optimistic locking to whole aggregates.
from keel.infrastructure.database import aggregate_lock as aggregate_lock
from keel.infrastructure.database._translate import translating
from keel.infrastructure.database.engine import create_engine, create_session_factory
from keel.infrastructure.database.errors import is_transient, translate_db_error
from keel.infrastructure.database.health import HealthCheckResult, check_database
from keel.infrastructure.database.orm import (
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
    keel_metadata,
    map_imperatively,
    model_traits,
)
from keel.infrastructure.database.types import UTCDateTime

__all__ = [
    "Base",
    "HealthCheckResult",
    "SoftDeleteMixin",
    "TimestampMixin",
    "UTCDateTime",
    "VersionMixin",
    "check_database",
    "create_engine",
    "create_session_factory",
    "is_transient",
    "keel_metadata",
    "map_imperatively",
    "model_traits",
    "translate_db_error",
    "translating",
]
