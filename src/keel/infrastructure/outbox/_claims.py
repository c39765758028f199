"""The relay's statements: claim a batch in order per ordering key, then settle it.

A row is claimable when it is pending, due, and the *head* of its ordering
key: no earlier row of the key is unpublished (pending, backing off, parked,
or claimed by another relay). Heads are locked with ``FOR UPDATE SKIP
LOCKED``, so relays side by side take different keys; each claimed head then
brings the due rows right behind it in its key (locked while the batch is in
hand), which no other relay can claim because the head is still unpublished
for them. Rows without an ordering key are all heads.

SQLite has no row locks, and holding its one write lock while publishing
would stall every writer (a consumer in the same process included). There
the claim takes the write lock only to *lease* the batch (its rows'
``available_at`` moves ``claim_timeout`` seconds ahead, which hides them and
their keys' successors from other claims), commits, and the batch is
settled in a second short transaction; a relay that dies leaves its lease
to expire.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from keel.infrastructure.outbox.tables import PENDING, PUBLISHED, outbox

#: A claimed row (a SQLAlchemy ``Row`` of the columns below).
OutboxRow = Any
_earlier = aliased(outbox, name="earlier")
_COLUMNS = (
    outbox.c.id,
    outbox.c.position,
    outbox.c.topic,
    outbox.c.ordering_key,
    outbox.c.payload,
    outbox.c.attributes,
    outbox.c.attempts,
    outbox.c.status,
    outbox.c.available_at,
)


async def claim(session: AsyncSession, now: datetime, limit: int) -> list[OutboxRow]:
    """Lock and return up to ``limit`` publishable rows (inside the session's open transaction), in position order."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if not postgresql:
        # Takes SQLite's write lock before reading, so a second relay waits instead of
        # reading the same rows; no row matches, nothing changes.
        await session.execute(update(outbox).where(outbox.c.position < 0).values(attempts=outbox.c.attempts))
    blocked = exists().where(
        _earlier.c.ordering_key == outbox.c.ordering_key,
        _earlier.c.position < outbox.c.position,
        _earlier.c.status != PUBLISHED,
    )
    heads_query = (
        select(*_COLUMNS)
        .where(outbox.c.status == PENDING, outbox.c.available_at <= now, ~blocked)
        .order_by(outbox.c.position)
        .limit(limit)
    )
    if postgresql:
        heads_query = heads_query.with_for_update(skip_locked=True, of=outbox)
    heads = list((await session.execute(heads_query)).all())
    keyed = {row.ordering_key: row.position for row in heads if row.ordering_key is not None}
    room = limit - len(heads)
    if not keyed or room <= 0:
        return heads
    followers_query = (
        select(*_COLUMNS)
        .where(
            outbox.c.ordering_key.in_(list(keyed)),
            outbox.c.status != PUBLISHED,
            outbox.c.position > min(keyed.values()),
        )
        .order_by(outbox.c.position)
        .limit(room + len(keyed))
    )
    if postgresql:
        # Waits rather than skips: a row skipped here would let its successors overtake it.
        followers_query = followers_query.with_for_update(of=outbox)
    taken = {row.id for row in heads}
    chains: dict[str, list[OutboxRow]] = defaultdict(list)
    stopped: set[str] = set()
    for row in (await session.execute(followers_query)).all():
        key = row.ordering_key
        if row.id in taken or row.position <= keyed[key] or key in stopped:
            continue
        if row.status != PENDING or row.available_at > now or room <= 0:
            stopped.add(key)  # the chain stops at the first row that cannot go now
            continue
        chains[key].append(row)
        room -= 1
    return sorted([*heads, *(row for chain in chains.values() for row in chain)], key=lambda row: row.position)


async def lease(session: AsyncSession, ids: Sequence[str], until: datetime) -> None:
    """Reserve ``ids`` until ``until`` (SQLite's claim; see the module docstring)."""
    if ids:
        await session.execute(update(outbox).where(outbox.c.id.in_(ids)).values(available_at=until))


async def release(session: AsyncSession, ids: Sequence[str], now: datetime) -> None:
    """Make claimed rows that were not attempted (they queued behind a failure) due again."""
    if ids:
        await session.execute(
            update(outbox).where(outbox.c.id.in_(ids), outbox.c.status == PENDING).values(available_at=now)
        )


async def mark_published(session: AsyncSession, ids: Sequence[str], now: datetime, *, delete_rows: bool) -> None:
    """Record ``ids`` as published (or delete them)."""
    if not ids:
        return
    if delete_rows:
        await session.execute(delete(outbox).where(outbox.c.id.in_(ids)))
        return
    await session.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids))
        .values(status=PUBLISHED, published_at=now, attempts=outbox.c.attempts + 1, last_error=None)
    )


async def mark_failed(session: AsyncSession, failures: Sequence[dict[str, Any]]) -> None:
    """Record failed attempts: each dict has ``b_id``, ``attempts``, ``status``, ``available_at``, ``last_error``."""
    if not failures:
        return
    statement = (
        update(outbox)
        .where(outbox.c.id == bindparam("b_id"))
        .values(
            attempts=bindparam("b_attempts"),
            status=bindparam("b_status"),
            available_at=bindparam("b_available_at"),
            last_error=bindparam("b_last_error"),
        )
    )
    connection = await session.connection()
    await connection.execute(statement, list(failures))
