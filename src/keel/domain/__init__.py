"""The domain layer: pure Python and pydantic, no infrastructure."""

from __future__ import annotations

# ``X as X``, not ``__all__``: re-exported for keel's own modules, not advertised; the public path of
# these names is ``keel`` (docs/architecture.md, "Public paths").
from keel.domain.aggregate import AggregateRoot as AggregateRoot
from keel.domain.errors import AuthorizationError as AuthorizationError
from keel.domain.errors import CheckViolationError as CheckViolationError
from keel.domain.errors import ConcurrencyError as ConcurrencyError
from keel.domain.errors import ConflictError as ConflictError
from keel.domain.errors import ConstraintViolationError as ConstraintViolationError
from keel.domain.errors import DomainError as DomainError
from keel.domain.errors import ForeignKeyViolationError as ForeignKeyViolationError
from keel.domain.errors import KeelError as KeelError
from keel.domain.errors import NotFoundError as NotFoundError
from keel.domain.errors import NotNullViolationError as NotNullViolationError
from keel.domain.errors import UnitOfWorkError as UnitOfWorkError
from keel.domain.errors import ValidationError as ValidationError
from keel.domain.messages import Command as Command
from keel.domain.messages import DomainEvent as DomainEvent
from keel.domain.messages import Message as Message
from keel.domain.messages import utcnow as utcnow
