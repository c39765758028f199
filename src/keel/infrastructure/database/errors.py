"""Deprecated home of the driver-error translators: import from :mod:`keel.infrastructure.database`.

The translators live in ``keel.infrastructure.database._translate`` and
:func:`is_transient` in :mod:`keel.cross_cutting.error`; this module only
keeps old imports working.
"""

from __future__ import annotations

from keel.cross_cutting.error import is_transient
from keel.infrastructure.database._translate import (
    RETRYABLE_SQLSTATES,
    attached_elsewhere,
    connect_error,
    pending_rollback_error,
    sqlstate,
    translate_db_error,
)

__all__ = [
    "RETRYABLE_SQLSTATES",
    "attached_elsewhere",
    "connect_error",
    "is_transient",
    "pending_rollback_error",
    "sqlstate",
    "translate_db_error",
]
