"""Errors raised by keel's adapters when a backing service fails."""

from __future__ import annotations

from typing import Any

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
    """A message could not be published.

    ``retryable`` (also in ``details``) is True when the same publish may
    succeed later (the broker was unreachable, slow or busy), False when it
    never will as it stands (a refused message, a missing permission).
    """

    code = "publish_error"

    def __init__(self, message: str = "", /, *, retryable: bool = False, **details: Any) -> None:
        self.retryable = retryable
        super().__init__(message, retryable=retryable, **details)


class CacheError(InfrastructureError):
    """The cache failed (callers degrade to the database instead)."""

    code = "cache_error"


class SecretUnavailableError(InfrastructureError):
    """A secret store could not be read (unreachable, or access refused).

    A secret the store does not hold is not this error: providers return
    ``None`` for it. The message names the secret, never its value.
    """

    code = "secret_unavailable"
