"""Automatic audit: one record per command handled, written by bus middleware and a commit participant.

:class:`AuditMiddleware` wraps every command the bus handles. Before the
handler runs it builds an :class:`AuditEntry` (message type, principal,
correlation id, redacted payload) and holds it in a context variable; the
audit commit participant (``keel.infrastructure.audit.RecordAudit``) inserts
it before the flush of the handler's own unit of work, so the record of a
success commits, or rolls back, with the work it describes. An attempt the
bus retries rolls its insert back with its work, so only the committing
attempt leaves a row; a handler's second commit finds the entry written and
adds nothing.

What no unit of work wrote, the middleware writes in a transaction of its
own through an :class:`AuditLog`: a denial (the handler never ran), a
failure (nothing committed, or the handler failed after committing: the
row's outcome is then updated), and a success without a unit of work.

This module knows no SQL: the log and the participant live in
``keel.infrastructure.audit``.
"""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from keel.cross_cutting.security._principal import current_principal
from keel.cross_cutting.security._redact import redacted
from keel.domain.errors import AuthorizationError, KeelError
from keel.domain.messages import utcnow
from keel.service_layer.commands import current_command
from keel.service_layer.context import current_correlation_id
from keel.service_layer.middleware import CallNext, HandlerCall

logger = logging.getLogger("keel.audit")

Outcome = Literal["succeeded", "failed", "denied"]
#: The error code recorded for an exception that is not a keel error (its message is never stored).
UNEXPECTED_ERROR = "internal_error"


@dataclass(slots=True)
class AuditEntry:
    """One command handled, as the audit table stores it."""

    message_type: str
    handler: str
    payload: dict[str, Any]
    principal_id: str | None = None
    correlation_id: str | None = None
    command_id: str | None = None
    outcome: Outcome = "succeeded"
    error_code: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: datetime = field(default_factory=utcnow)
    #: Set once a transaction that inserted this entry committed (the handler's own).
    written: bool = False

    def row(self) -> dict[str, Any]:
        """The entry as the audit table's column values."""
        return {
            "id": self.id,
            "occurred_at": self.occurred_at,
            "message_type": self.message_type,
            "handler": self.handler,
            "outcome": self.outcome,
            "principal_id": self.principal_id,
            "correlation_id": self.correlation_id,
            "command_id": self.command_id,
            "payload": self.payload,
            "error_code": self.error_code,
        }


_pending: ContextVar[AuditEntry | None] = ContextVar("keel_audit_entry", default=None)


def pending_audit_entry() -> AuditEntry | None:
    """The entry of the command this task is handling, until some transaction wrote it (else ``None``)."""
    entry = _pending.get()
    return None if entry is None or entry.written else entry


class AuditLog(Protocol):
    """Where :class:`AuditMiddleware` writes what no unit of work wrote."""

    async def check(self) -> None:
        """Raise :class:`keel.ConfigurationError` when the log cannot be written (its table is missing)."""

    async def record(self, entry: AuditEntry) -> None:
        """Write ``entry`` in a transaction of its own: insert it, or update the row with its id."""


class AuditMiddleware:
    """Bus middleware recording every command handled; see the module docstring.

    Off for a bus built with ``MessageBus(..., audit=False)``. The log is
    checked once, before the first command: a missing table is a
    :class:`keel.ConfigurationError` before any handler runs.
    """

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._checked = False

    def __repr__(self) -> str:
        return f"AuditMiddleware({self.log!r})"

    async def __call__(self, call: HandlerCall, call_next: CallNext) -> Any:
        """Record the command's outcome around ``call_next()``."""
        if call.kind != "command" or (call.bus is not None and not call.bus.audit):
            return await call_next()
        if not self._checked:
            await self.log.check()
            self._checked = True
        entry = new_entry(call)
        token = _pending.set(entry)
        try:
            result = await call_next()
        except Exception as exc:
            _pending.reset(token)
            entry.outcome = "denied" if isinstance(exc, AuthorizationError) else "failed"
            entry.error_code = exc.code if isinstance(exc, KeelError) else UNEXPECTED_ERROR
            await self._record(entry, exc)
            raise
        except BaseException:  # cancelled: what committed is recorded; nothing more can be said
            _pending.reset(token)
            raise
        _pending.reset(token)
        if not entry.written:
            await self._record(entry, None)
        return result

    async def _record(self, entry: AuditEntry, error: Exception | None) -> None:
        try:
            await self.log.record(entry)
        except Exception as failure:
            # The command's own outcome stands: its effects (if any) are
            # committed, and raising here would make a caller repeat them.
            logger.exception(
                "could not write the audit record %s of %s (%s)",
                entry.id,
                entry.message_type,
                entry.outcome,
                extra={"keel_audit_id": entry.id, "keel_message": entry.message_type},
            )
            if error is not None:
                error.add_note(f"the audit record of this command could not be written: {failure!r}")


def new_entry(call: HandlerCall) -> AuditEntry:
    """The entry for ``call``, from the current principal, correlation and command.

    Values are cut to their columns' widths: a correlation id arrives from a
    client's header, and one too long for its column must not fail the command.
    """
    principal = current_principal()
    command = current_command()
    correlation = current_correlation_id()
    return AuditEntry(
        message_type=call.message.message_type[:200],
        handler=call.handler[:300],
        payload=redacted(call.message),
        principal_id=principal.id if principal is not None else None,
        correlation_id=correlation[:200] if correlation is not None else None,
        command_id=command.command_id if command is not None else None,
    )
