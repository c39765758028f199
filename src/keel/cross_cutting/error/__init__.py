"""keel's whole error hierarchy in one place.

``KeelError`` → ``DomainError`` (raised by business code, defined in
``keel.domain.errors`` so the domain needs nothing else) and
``InfrastructureError`` (raised when a database, broker or cache misbehaves;
defined here). Driver exceptions are translated into these at the
infrastructure edge, so callers never catch a driver's types.
"""

from __future__ import annotations

from keel.cross_cutting.error._infrastructure import (
    CacheError,
    DatabaseError,
    DatabaseUnavailableError,
    InfrastructureError,
    PublishError,
)

# Which of these errors a retry can cure.
from keel.cross_cutting.error._transient import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from keel.cross_cutting.error._transient import is_transient as is_transient
from keel.domain.errors import (
    AuthorizationError,
    CheckViolationError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    ConstraintViolationError,
    DomainError,
    ForeignKeyViolationError,
    KeelError,
    NotFoundError,
    NotNullViolationError,
    UnitOfWorkError,
    ValidationError,
)

__all__ = [
    "AuthorizationError",
    "CacheError",
    "CheckViolationError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConstraintViolationError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DomainError",
    "ForeignKeyViolationError",
    "InfrastructureError",
    "KeelError",
    "NotFoundError",
    "NotNullViolationError",
    "PublishError",
    "UnitOfWorkError",
    "ValidationError",
]
