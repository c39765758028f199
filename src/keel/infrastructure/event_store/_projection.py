"""``Projection``: a read model built from ``read_all``, and one step of it, exactly once.

One step is one transaction: lock the projection's checkpoint, read the next
batch of events after it, let the projection write its read model in the
same session, move the checkpoint, commit. A crash anywhere before the
commit rolls back the read-model writes with the checkpoint, so no event's
effect is ever applied twice, and none is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.cross_cutting.error import ConfigurationError
from keel.domain.messages import DomainEvent
from keel.domain.streams import RecordedEvent
from keel.infrastructure.event_store import _appending, _checkpoints, _sql
from keel.infrastructure.event_store._types import EventTypes

DEFAULT_BATCH_SIZE = 100


class Projection:
    """A read model kept up to date from the store's global order (see docs/event-store.md, "Projections").

    Subclasses set ``name`` (the checkpoint's key: stable, unique) and
    implement :meth:`handle`, writing through ``session`` only: it runs in
    the transaction that also moves the checkpoint. ``types`` (classes or
    type names) limits the events read; :meth:`reset` empties the read model
    before ``keel events replay`` rebuilds it.
    """

    name: ClassVar[str]
    types: ClassVar[tuple[type[DomainEvent] | str, ...] | None] = None

    async def handle(self, record: RecordedEvent, session: AsyncSession) -> None:
        """Apply one event to the read model, through ``session``."""
        raise NotImplementedError

    async def reset(self, session: AsyncSession) -> None:
        """Empty the read model (in the transaction that rewinds the checkpoint to 0)."""

    @classmethod
    def type_names(cls) -> list[str] | None:
        """``types`` as stored type names, or None for every event."""
        if cls.types is None:
            return None
        return [t if isinstance(t, str) else t.message_type for t in cls.types]


def check_projections(projections: Iterable[Projection]) -> dict[str, Projection]:
    """The projections by name; a missing or repeated name is a ConfigurationError."""
    named: dict[str, Projection] = {}
    for projection in projections:
        if not isinstance(projection, Projection):
            raise ConfigurationError(f"{projection!r} is not a keel.event_store.Projection")
        name = getattr(projection, "name", None)
        if not isinstance(name, str) or not name or name.endswith(_checkpoints.REPLAY_SUFFIX):
            raise ConfigurationError(f"projection {type(projection).__name__} needs a `name` (a non-empty string)")
        if name in named:
            raise ConfigurationError(f"two projections are named {name!r}", projection=name)
        named[name] = projection
    return named


async def step(
    session_factory: async_sessionmaker[AsyncSession],
    projection: Projection,
    types: EventTypes,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[int, int]:
    """Apply the next batch (at most ``batch_size`` events) in one transaction: (events applied, new checkpoint)."""
    names = projection.type_names()
    async with session_factory() as session, session.begin():
        read_at = await session.run_sync(lambda s: _checkpoints.lock(s.connection(), projection.name))
        head = await session.run_sync(lambda s: _checkpoints.head(s.connection())) if names is not None else 0
        query = _sql.all_query(read_at, batch_size, names)
        batch = await session.run_sync(lambda s: _appending.decoded(types, s.connection().execute(query)))
        for record in batch:
            await projection.handle(record, session)
        position = batch[-1].position if batch else read_at
        if names is not None and len(batch) < batch_size:
            # Filtered: every event up to the head read before the batch is visible and was considered.
            position = max(position, head)
        if position != read_at:
            await session.run_sync(lambda s: _checkpoints.advance(s.connection(), projection.name, read_at, position))
    return len(batch), position
