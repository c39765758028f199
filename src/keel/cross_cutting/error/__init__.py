"""keel's whole error hierarchy in one place.

``KeelError`` → ``DomainError`` (raised by business code, defined in
``keel.domain.errors`` so the domain needs nothing else) and
``InfrastructureError`` (raised when a database, broker or cache misbehaves;
defined here). Driver exceptions are translated into these at the
infrastructure edge, so callers never catch a driver's types.
"""

from __future__ import annotations

# ``X as X``, not ``__all__``: re-exported for keel's own modules, not advertised; the public path of
# these names is ``keel`` (docs/architecture.md, "Public paths").
from keel.cross_cutting.error._infrastructure import CacheError as CacheError
from keel.cross_cutting.error._infrastructure import DatabaseError as DatabaseError
from keel.cross_cutting.error._infrastructure import DatabaseUnavailableError as DatabaseUnavailableError
from keel.cross_cutting.error._infrastructure import InfrastructureError as InfrastructureError
from keel.cross_cutting.error._infrastructure import PublishError as PublishError
from keel.cross_cutting.error._infrastructure import SecretUnavailableError as SecretUnavailableError
from keel.cross_cutting.error._infrastructure import StatementTimeoutError as StatementTimeoutError
from keel.cross_cutting.error._transient import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from keel.cross_cutting.error._transient import is_transient as is_transient
from keel.domain.errors import AuthenticationError as AuthenticationError
from keel.domain.errors import AuthorizationError as AuthorizationError
from keel.domain.errors import CheckViolationError as CheckViolationError
from keel.domain.errors import ConcurrencyError as ConcurrencyError
from keel.domain.errors import ConfigurationError as ConfigurationError
from keel.domain.errors import ConflictError as ConflictError
from keel.domain.errors import ConstraintViolationError as ConstraintViolationError
from keel.domain.errors import DomainError as DomainError
from keel.domain.errors import ForeignKeyViolationError as ForeignKeyViolationError
from keel.domain.errors import KeelError as KeelError
from keel.domain.errors import NotFoundError as NotFoundError
from keel.domain.errors import NotNullViolationError as NotNullViolationError
from keel.domain.errors import UnitOfWorkError as UnitOfWorkError
from keel.domain.errors import ValidationError as ValidationError
