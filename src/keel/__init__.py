"""keel: the shared floor of Python services.

An async unit of work over SQLAlchemy 2, generic repositories, a message bus
that dispatches events after commit, and the pieces around them.
"""

from __future__ import annotations

from keel.cross_cutting.error import (
    AuthorizationError,
    CacheError,
    CheckViolationError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    DomainError,
    ForeignKeyViolationError,
    InfrastructureError,
    KeelError,
    NotFoundError,
    NotNullViolationError,
    PublishError,
    UnitOfWorkError,
    ValidationError,
)
from keel.domain import AggregateRoot, Command, DomainEvent, Message
from keel.infrastructure.repository import (
    CursorPage,
    Eq,
    Filter,
    In,
    IsNull,
    Like,
    Ne,
    Page,
    Range,
    SqlAlchemyRepository,
    filters_from_query,
)
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.service_layer import (
    BusConfigurationError,
    BusStats,
    CallNext,
    CommandAlreadyHandledError,
    CommitParticipant,
    HandlerCall,
    HandlerRegistry,
    MessageBus,
    Middleware,
    Participant,
    RetryPolicy,
)
from keel.service_layer.unit_of_work import AbstractUnitOfWork

__version__ = "0.1.0"

__all__ = [
    "AbstractUnitOfWork",
    "AggregateRoot",
    "AuthorizationError",
    "BusConfigurationError",
    "BusStats",
    "CacheError",
    "CallNext",
    "CheckViolationError",
    "Command",
    "CommandAlreadyHandledError",
    "CommitParticipant",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConstraintViolationError",
    "CursorPage",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DomainError",
    "DomainEvent",
    "Eq",
    "Filter",
    "ForeignKeyViolationError",
    "HandlerCall",
    "HandlerRegistry",
    "In",
    "InfrastructureError",
    "IsNull",
    "KeelError",
    "Like",
    "Message",
    "MessageBus",
    "Middleware",
    "Ne",
    "NotFoundError",
    "NotNullViolationError",
    "Page",
    "Participant",
    "PublishError",
    "Range",
    "RetryPolicy",
    "SqlAlchemyRepository",
    "SqlAlchemyUnitOfWork",
    "UnitOfWorkError",
    "ValidationError",
    "__version__",
    "filters_from_query",
]
