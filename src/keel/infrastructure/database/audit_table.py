"""``keel_audit``: one row per command the bus handled (see :mod:`keel.infrastructure.audit`)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, String, Table
from sqlalchemy.dialects.postgresql import JSONB

from keel.infrastructure.database.orm import keel_metadata
from keel.infrastructure.database.types import UTCDateTime

#: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
AUDIT_PAYLOAD = JSON().with_variant(JSONB(), "postgresql")

audit = Table(
    "keel_audit",
    keel_metadata,
    Column("id", String(32), primary_key=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("message_type", String(200), nullable=False),
    Column("handler", String(300), nullable=False),
    #: ``succeeded``, ``failed`` or ``denied``.
    Column("outcome", String(16), nullable=False),
    Column("principal_id", String(255), nullable=True),
    Column("correlation_id", String(200), nullable=True),
    Column("command_id", String(200), nullable=True),
    #: The command's fields, secret ones masked.
    Column("payload", AUDIT_PAYLOAD, nullable=False),
    #: The keel error code of a failure or denial (``internal_error`` for anything else).
    Column("error_code", String(100), nullable=True),
    Index("ix_keel_audit_occurred_at", "occurred_at"),
    Index("ix_keel_audit_principal_id", "principal_id"),
    Index("ix_keel_audit_correlation_id", "correlation_id"),
)
