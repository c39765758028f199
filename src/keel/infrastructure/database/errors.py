"""Deprecated home of the driver-error translators: import from :mod:`keel.infrastructure.database`.

The translators live in ``keel.infrastructure.database._translate`` and
:func:`is_transient` in :mod:`keel.cross_cutting.error`; this module only
keeps old imports working.
"""

from __future__ import annotations

from keel.cross_cutting.error import is_transient as is_transient
from keel.infrastructure.database._translate import RETRYABLE_SQLSTATES as RETRYABLE_SQLSTATES
from keel.infrastructure.database._translate import attached_elsewhere as attached_elsewhere
from keel.infrastructure.database._translate import connect_error as connect_error
from keel.infrastructure.database._translate import pending_rollback_error as pending_rollback_error
from keel.infrastructure.database._translate import sqlstate as sqlstate
from keel.infrastructure.database._translate import translate_db_error as translate_db_error
