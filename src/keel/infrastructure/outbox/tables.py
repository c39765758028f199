"""The outbox and inbox tables, on :data:`keel.orm.keel_metadata` (keel's migration ``keel_0004``).

``keel_outbox`` holds one row per routed event, written in the business
transaction; ``position`` (filled by the database on PostgreSQL, by the
writer on SQLite) orders the rows of one ordering key. ``keel_inbox`` holds
one row per message an idempotent consumer applied.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Identity, Index, Integer, String, Table, Text

from keel.infrastructure.database.orm import keel_metadata
from keel.infrastructure.database.types import UTCDateTime

#: Outbox row states: waiting (or backing off), sent, set aside after too many failures.
PENDING = "pending"
PUBLISHED = "published"
PARKED = "parked"

outbox = Table(
    "keel_outbox",
    keel_metadata,
    # The event's id: the message id consumers deduplicate on.
    Column("id", String(64), primary_key=True),
    # Identity on PostgreSQL; SQLite has no identity columns, so the writer computes it there.
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), Identity(), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("ordering_key", String(255), nullable=True),
    Column("payload", Text(), nullable=False),
    Column("attributes", JSON(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("available_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_error", Text(), nullable=True),
    Column("published_at", UTCDateTime(), nullable=True),
    # The claim: pending rows in order (the due ones filtered from them).
    Index("ix_keel_outbox_status_position", "status", "position"),
    # "Is an earlier row of this key still unpublished?" for every candidate.
    Index("ix_keel_outbox_ordering_key_position", "ordering_key", "position"),
)

inbox = Table(
    "keel_inbox",
    keel_metadata,
    Column("consumer", String(200), primary_key=True),
    Column("message_key", String(200), primary_key=True),
    Column("processed_at", UTCDateTime(), nullable=False),
    # The retention sweep deletes by age.
    Index("ix_keel_inbox_processed_at", "processed_at"),
)
