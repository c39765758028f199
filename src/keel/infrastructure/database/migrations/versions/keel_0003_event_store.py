"""The event store: keel_events (append-only), keel_streams, keel_snapshots, keel_projection_checkpoints.

On PostgreSQL, triggers refuse UPDATE/DELETE on keel_events and NOTIFY the
``keel_events`` channel when a transaction that inserted events commits.

Revision ID: keel_0003
Revises: keel_0002
Create Date: 2026-12-07 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keel.orm

revision: str = "keel_0003"
down_revision: str | Sequence[str] | None = "keel_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# Copied, not imported, from keel.infrastructure.event_store.tables: a migration stays as it was written.
_POSTGRESQL_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION keel_events_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'keel_events is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql""",
    """CREATE TRIGGER keel_events_append_only BEFORE UPDATE OR DELETE ON keel_events
    FOR EACH ROW EXECUTE FUNCTION keel_events_refuse_change()""",
    """CREATE OR REPLACE FUNCTION keel_events_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('keel_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql""",
    """CREATE TRIGGER keel_events_appended AFTER INSERT ON keel_events
    FOR EACH STATEMENT EXECUTE FUNCTION keel_events_notify()""",
]
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER keel_events_no_update BEFORE UPDATE ON keel_events
    BEGIN SELECT RAISE(ABORT, 'keel_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER keel_events_no_delete BEFORE DELETE ON keel_events
    BEGIN SELECT RAISE(ABORT, 'keel_events is append-only: DELETE refused'); END""",
]


def upgrade() -> None:
    op.create_table(
        "keel_events",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("stream_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("recorded_at", keel.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_keel_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_keel_events_event_id")),
        sa.UniqueConstraint("stream_id", "version", name=op.f("uq_keel_events_stream_id_version")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "keel_streams",
        sa.Column("stream_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", keel.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_keel_streams")),
    )
    op.create_table(
        "keel_snapshots",
        sa.Column("stream_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("state", _JSON, nullable=False),
        sa.Column("taken_at", keel.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_keel_snapshots")),
    )
    op.create_table(
        "keel_projection_checkpoints",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", keel.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_keel_projection_checkpoints")),
    )
    dialect = op.get_bind().dialect.name
    for statement in (
        _POSTGRESQL_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS if dialect == "sqlite" else []
    ):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("keel_projection_checkpoints")
    op.drop_table("keel_snapshots")
    op.drop_table("keel_streams")
    op.drop_table("keel_events")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS keel_events_refuse_change()")
        op.execute("DROP FUNCTION IF EXISTS keel_events_notify()")
