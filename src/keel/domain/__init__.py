"""The domain layer: pure Python and pydantic, no infrastructure."""

from __future__ import annotations

from keel.domain.aggregate import AggregateRoot
from keel.domain.errors import (
    AuthorizationError,
    ConcurrencyError,
    ConflictError,
    DomainError,
    KeelError,
    NotFoundError,
    UnitOfWorkError,
    ValidationError,
)
from keel.domain.messages import Command, DomainEvent, Message, utcnow

__all__ = [
    "AggregateRoot",
    "AuthorizationError",
    "Command",
    "ConcurrencyError",
    "ConflictError",
    "DomainError",
    "DomainEvent",
    "KeelError",
    "Message",
    "NotFoundError",
    "UnitOfWorkError",
    "ValidationError",
    "utcnow",
]
