"""keel's own tables, on :data:`keel.orm.keel_metadata` (created by keel's Alembic branch).

Importing :mod:`keel.orm` imports this module, so ``keel_metadata`` is
complete wherever it is used (``keel_metadata.create_all`` in a quick start,
the migrations' ``target_metadata``).
"""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from keel.infrastructure.database.audit_table import audit as audit
from keel.infrastructure.database.orm import keel_metadata
from keel.infrastructure.database.types import UTCDateTime
from keel.infrastructure.event_store import tables as _event_store_tables  # noqa: F401  (fills keel_metadata)
from keel.infrastructure.outbox import tables as _outbox_tables  # noqa: F401  (keel_outbox, keel_inbox)

#: Longest command id or idempotency key (keep equal to keel.service_layer.commands.MAX_KEY_LENGTH).
COMMAND_ID_LENGTH = 200

#: One row per command whose effects committed: the bus's record for exactly-once handling.
processed_commands = Table(
    "keel_processed_commands",
    keel_metadata,
    Column("command_id", String(COMMAND_ID_LENGTH), primary_key=True),
    Column("command_type", String(200), nullable=False),
    Column("committed_at", UTCDateTime(), nullable=False),
)
