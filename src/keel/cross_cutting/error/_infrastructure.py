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


class StatementTimeoutError(DatabaseError):
    """The database cancelled a statement that ran longer than its statement timeout.

    Not transient: the same statement would most likely time out again.
    ``KEEL_DATABASE__STATEMENT_TIMEOUT`` sets the limit (PostgreSQL).
    """

    code = "statement_timeout"


class PublishError(InfrastructureError):
    """A message could not be published."""

    code = "publish_error"


class CacheError(InfrastructureError):
    """The cache failed (callers degrade to the database instead)."""

    code = "cache_error"


class SecretUnavailableError(InfrastructureError):
    """A secret store could not be read (unreachable, or access refused).

    A secret the store does not hold is not this error: providers return
    ``None`` for it. The message names the secret, never its value.
    """

    code = "secret_unavailable"
