"""Database plumbing: engines, session factories, ORM helpers, error translation."""

from __future__ import annotations

from keel.cross_cutting.error import is_transient
from keel.infrastructure.database import aggregate_lock as aggregate_lock
from keel.infrastructure.database._translate import translate_db_error, translating
from keel.infrastructure.database.direct import create_direct_engine, open_listen_connection
from keel.infrastructure.database.engine import create_engine, create_replica_router, create_session_factory
from keel.infrastructure.database.health import HealthCheckResult, check_database
from keel.infrastructure.database.orm import Base as Base
from keel.infrastructure.database.orm import SoftDeleteMixin as SoftDeleteMixin
from keel.infrastructure.database.orm import TimestampMixin as TimestampMixin
from keel.infrastructure.database.orm import VersionMixin as VersionMixin
from keel.infrastructure.database.orm import keel_metadata as keel_metadata
from keel.infrastructure.database.orm import map_imperatively as map_imperatively
from keel.infrastructure.database.orm import model_traits as model_traits
from keel.infrastructure.database.replicas import ReplicaRouter, ReplicaStats, commit_position, read_after
from keel.infrastructure.database.types import UTCDateTime as UTCDateTime

# The ``X as X`` imports above keep old paths working for keel's own modules; their public
# path is keel.orm (docs/architecture.md, "Public paths").
__all__ = [
    "HealthCheckResult",
    "ReplicaRouter",
    "ReplicaStats",
    "check_database",
    "commit_position",
    "create_direct_engine",
    "create_engine",
    "create_replica_router",
    "create_session_factory",
    "is_transient",
    "open_listen_connection",
    "read_after",
    "translate_db_error",
    "translating",
]
