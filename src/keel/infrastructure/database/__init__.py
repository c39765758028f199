"""Database plumbing: engines, session factories, ORM helpers, error translation."""

from __future__ import annotations

from keel.cross_cutting.error import is_transient
from keel.infrastructure.database import aggregate_lock as aggregate_lock
from keel.infrastructure.database._translate import translate_db_error, translating
from keel.infrastructure.database.engine import create_engine, create_session_factory
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
