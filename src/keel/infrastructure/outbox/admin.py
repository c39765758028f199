"""Looking after the outbox: its status, re-queueing parked messages, deleting old rows.

Behind ``keel outbox status|retry|purge``; plain functions over a session
factory, so a health check or an admin endpoint can call them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.config import OutboxSettings
from keel.domain.messages import utcnow
from keel.infrastructure.outbox.tables import PARKED, PENDING, PUBLISHED, inbox, outbox


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """A message the relay gave up on, with the error of its last attempt."""

    id: str
    topic: str
    event_type: str | None
    ordering_key: str | None
    attempts: int
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """How the outbox stands: backlog, its age, and the parked messages (up to the limit asked)."""

    pending: int
    parked: int
    published: int
    oldest_pending_age: float | None
    parked_messages: list[ParkedMessage] = field(default_factory=list)


async def outbox_status(
    session_factory: async_sessionmaker[AsyncSession], *, limit: int = 20, now: datetime | None = None
) -> OutboxStatus:
    """Counts per state, the age in seconds of the oldest pending row, and up to ``limit`` parked messages."""
    now = now or utcnow()
    async with session_factory() as session:
        grouped = await session.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
        counts: dict[str, int] = {str(status): int(count) for status, count in grouped}
        oldest = (
            await session.execute(select(func.min(outbox.c.created_at)).where(outbox.c.status == PENDING))
        ).scalar_one()
        parked_rows = (
            await session.execute(
                select(outbox).where(outbox.c.status == PARKED).order_by(outbox.c.position).limit(limit)
            )
        ).all()
    return OutboxStatus(
        pending=counts.get(PENDING, 0),
        parked=counts.get(PARKED, 0),
        published=counts.get(PUBLISHED, 0),
        oldest_pending_age=None if oldest is None else max((now - oldest).total_seconds(), 0.0),
        parked_messages=[
            ParkedMessage(
                id=row.id,
                topic=row.topic,
                event_type=row.attributes.get("event_type"),
                ordering_key=row.ordering_key,
                attempts=row.attempts,
                last_error=row.last_error,
                created_at=row.created_at,
            )
            for row in parked_rows
        ],
    )


async def retry_parked(
    session_factory: async_sessionmaker[AsyncSession], ids: Sequence[str] | None = None, *, now: datetime | None = None
) -> int:
    """Put parked messages (those of ``ids``, or all) back in line with fresh attempts; how many."""
    statement = (
        update(outbox).where(outbox.c.status == PARKED).values(status=PENDING, attempts=0, available_at=now or utcnow())
    )
    if ids is not None:
        statement = statement.where(outbox.c.id.in_(list(ids)))
    async with session_factory() as session, session.begin():
        return (await session.execute(statement)).rowcount or 0  # type: ignore[attr-defined]


async def purge(
    session_factory: async_sessionmaker[AsyncSession], settings: OutboxSettings, *, now: datetime | None = None
) -> tuple[int, int]:
    """Delete published outbox rows and inbox rows older than their retention; (outbox, inbox) rows deleted."""
    now = now or utcnow()
    published_before = now - timedelta(seconds=settings.published_retention)
    processed_before = now - timedelta(seconds=settings.inbox_retention)
    async with session_factory() as session, session.begin():
        sent = await session.execute(
            delete(outbox).where(outbox.c.status == PUBLISHED, outbox.c.published_at < published_before)
        )
        seen = await session.execute(delete(inbox).where(inbox.c.processed_at < processed_before))
    return sent.rowcount or 0, seen.rowcount or 0  # type: ignore[attr-defined]
