"""Errors raised by keel's adapters when a backing service fails."""

from __future__ import annotations

from keel.domain.errors import KeelError


class InfrastructureError(KeelError):
    """A backing service failed; usually transient."""

    code = "infrastructure_error"


class DatabaseError(InfrastructureError):
    """The database refused a statement for a reason that is not the caller's input."""

    code = "database_error"


class DatabaseUnavailableError(DatabaseError):
    """The database could not be reached or dropped the connection."""

    code = "database_unavailable"


class PublishError(InfrastructureError):
    """A message could not be published."""

    code = "publish_error"


class CacheError(InfrastructureError):
    """The cache failed (callers degrade to the database instead)."""

    code = "cache_error"
