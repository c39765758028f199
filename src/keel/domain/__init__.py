"""The domain layer: pure Python and pydantic, no infrastructure."""

from __future__ import annotations

from keel.domain.aggregate import AggregateRoot
from keel.domain.errors import (
    AuthorizationError,
    CheckViolationError,
    ConcurrencyError,
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
from keel.domain.messages import Command, DomainEvent, Message, utcnow

__all__ = [
    "AggregateRoot",
    "AuthorizationError",
    "CheckViolationError",
    "Command",
    "ConcurrencyError",
    "ConflictError",
    "ConstraintViolationError",
    "DomainError",
    "DomainEvent",
    "ForeignKeyViolationError",
    "KeelError",
    "Message",
    "NotFoundError",
    "NotNullViolationError",
    "UnitOfWorkError",
    "ValidationError",
    "utcnow",
]
