"""``keel.security``: who is acting, what they may do, and the record of what they did.

.. code-block:: python

    @requires("allocate")
    async def allocate(cmd: Allocate, uow: AppUnitOfWork) -> str: ...

    with as_principal(Principal(id="alice", permissions={"allocate"})):
        await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=1))

The principal travels in message metadata (outbox rows, Pub/Sub attributes,
event store metadata), so a consumer can act as the original caller. The
container's bus refuses a command whose handler ``requires`` permissions
the principal lacks (:func:`authorize`) and writes a ``keel_audit`` row for
every command (:class:`AuditMiddleware`, :class:`RecordAudit`). See
docs/security.md and docs/secrets.md.
"""

from __future__ import annotations

from keel.cross_cutting.security import (
    MASK,
    AuditEntry,
    AuditLog,
    AuditMiddleware,
    EnvironmentSecretProvider,
    FileSecretProvider,
    GoogleSecretManagerProvider,
    JwtAuthenticator,
    Principal,
    as_principal,
    authorize,
    check_permissions,
    correlate,
    current_principal,
    pending_audit_entry,
    redacted,
    require_secret,
    required_permissions,
    requires,
)
from keel.infrastructure.audit import RecordAudit, SqlAlchemyAuditLog, audit_middleware

__all__ = [
    "MASK",
    "AuditEntry",
    "AuditLog",
    "AuditMiddleware",
    "EnvironmentSecretProvider",
    "FileSecretProvider",
    "GoogleSecretManagerProvider",
    "JwtAuthenticator",
    "Principal",
    "RecordAudit",
    "SqlAlchemyAuditLog",
    "as_principal",
    "audit_middleware",
    "authorize",
    "check_permissions",
    "correlate",
    "current_principal",
    "pending_audit_entry",
    "redacted",
    "require_secret",
    "required_permissions",
    "requires",
]
