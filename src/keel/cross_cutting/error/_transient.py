"""Which keel errors are worth retrying the whole unit of work for."""

from __future__ import annotations

from keel.cross_cutting.error._infrastructure import DatabaseUnavailableError
from keel.domain.errors import ConcurrencyError

#: The errors a retry can cure: a conflict with a concurrent transaction, a
#: lost or refused connection. The bus's retry policies retry exactly these.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConcurrencyError, DatabaseUnavailableError)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying the whole unit of work for (see :data:`TRANSIENT_ERRORS`)."""
    return isinstance(exc, TRANSIENT_ERRORS)
