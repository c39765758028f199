"""keel's base revision: the root of the ``keel`` branch (no tables yet).

Later revisions add keel's own tables (event store, outbox, inbox, audit),
each with ``down_revision`` pointing at the previous ``keel_*`` revision.

Revision ID: keel_0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "keel_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("keel",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
