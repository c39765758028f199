"""The projection checkpoints' statements, run on a synchronous ``Connection`` in the projection's transaction.

A projection's batch locks its checkpoint row first (an upsert returning it:
a row lock on PostgreSQL; on SQLite the write takes the database's single
write lock), so two workers that both believe they own a projection run its
batches one after the other, the second starting from where the first
committed. The final compare-and-set is the last guard: a checkpoint that
moved since it was read rolls the whole batch back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keel.cross_cutting.error import ConcurrencyError
from keel.domain.messages import utcnow
from keel.infrastructure.event_store.tables import events, projection_checkpoints

#: Suffix of the row that marks a replay in progress (its position: the head when the replay began).
REPLAY_SUFFIX = "#replay"


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """One projection's checkpoint as ``keel events status`` shows it."""

    name: str
    position: int
    replaying: bool


def _insert(conn: Connection) -> object:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(projection_checkpoints)
    return sqlite.insert(projection_checkpoints)


def lock(conn: Connection, name: str) -> int:
    """Create ``name``'s checkpoint at 0 if missing, lock it until the transaction ends, and return it.

    One statement: the upsert's UPDATE branch takes the row lock on PostgreSQL
    (waiting for a concurrent batch, then returning what it committed) and the
    write lock on SQLite, before any event is read.
    """
    now = utcnow()
    upsert = (
        _insert(conn)  # type: ignore[attr-defined]
        .values(name=name, position=0, updated_at=now)
        .on_conflict_do_update(index_elements=[projection_checkpoints.c.name], set_={"updated_at": now})
        .returning(projection_checkpoints.c.position)
    )
    return int(conn.execute(upsert).scalar_one())


def advance(conn: Connection, name: str, read_at: int, position: int) -> None:
    """Move ``name`` from ``read_at`` to ``position``; a checkpoint that moved meanwhile is a ConcurrencyError."""
    changed = conn.execute(
        update(projection_checkpoints)
        .where(and_(projection_checkpoints.c.name == name, projection_checkpoints.c.position == read_at))
        .values(position=position, updated_at=utcnow())
    )
    if changed.rowcount != 1:
        raise ConcurrencyError(
            f"projection {name!r} moved past position {read_at} during its batch: the batch is rolled back",
            projection=name,
        )


def head(conn: Connection) -> int:
    """The highest position recorded (0 for an empty store)."""
    return int(conn.execute(select(func.coalesce(func.max(events.c.position), 0))).scalar_one())


def replay_mark(conn: Connection, name: str) -> int | None:
    """The head position recorded when ``name``'s unfinished replay began, or None."""
    query = select(projection_checkpoints.c.position).where(projection_checkpoints.c.name == name + REPLAY_SUFFIX)
    found = conn.execute(query).scalar_one_or_none()
    return None if found is None else int(found)


def start_replay(conn: Connection, name: str, at_head: int) -> None:
    """Rewind ``name`` to 0 and mark the replay as started (both in the caller's transaction)."""
    conn.execute(
        update(projection_checkpoints)
        .where(projection_checkpoints.c.name == name)
        .values(position=0, updated_at=utcnow())
    )
    conn.execute(
        _insert(conn)  # type: ignore[attr-defined]
        .values(name=name + REPLAY_SUFFIX, position=at_head, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=[projection_checkpoints.c.name])
    )


def finish_replay(conn: Connection, name: str) -> None:
    """Forget the replay mark: the next replay starts from 0 again."""
    conn.execute(delete(projection_checkpoints).where(projection_checkpoints.c.name == name + REPLAY_SUFFIX))


def all_checkpoints(conn: Connection, names: Sequence[str] | None = None) -> list[CheckpointRow]:
    """Every projection's checkpoint (or those of ``names``), sorted by name."""
    rows = conn.execute(select(projection_checkpoints.c.name, projection_checkpoints.c.position)).all()
    positions = {str(r.name): int(r.position) for r in rows}
    wanted = sorted(names) if names is not None else sorted(n for n in positions if not n.endswith(REPLAY_SUFFIX))
    return [
        CheckpointRow(name=n, position=positions.get(n, 0), replaying=n + REPLAY_SUFFIX in positions) for n in wanted
    ]
