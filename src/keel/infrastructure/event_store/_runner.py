"""``ProjectionRunner``: runs projections in a worker, replays them, reports their lag."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.config import DatabaseSettings, KeelSettings
from keel.cross_cutting.error import ConfigurationError
from keel.infrastructure.event_store import _checkpoints
from keel.infrastructure.event_store._ownership import AdvisoryOwnership, EveryProjection
from keel.infrastructure.event_store._projection import DEFAULT_BATCH_SIZE, Projection, check_projections, step
from keel.infrastructure.event_store._types import EventTypes, default_event_types

_logger = logging.getLogger("keel.event_store")
#: Called during a replay with (checkpoint, head).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """How far a projection is: its checkpoint, the store's head, the events between, and whether it replays."""

    name: str
    position: int
    head: int
    lag: int
    replaying: bool


class ProjectionRunner:
    """Runs ``projections`` over the store of ``session_factory`` (see docs/event-store.md, "Projections").

    :meth:`run` is a worker: on PostgreSQL it owns the projections it can
    lock (one worker per projection at a time, taken over within
    ``claim_interval`` seconds when the owner dies) and wakes on
    ``NOTIFY keel_events``; it polls every ``poll_interval`` seconds as well,
    and on SQLite. Each batch of up to ``batch_size`` events is one
    transaction with the checkpoint. ``database`` gives the connection
    settings for the ownership/LISTEN connection (derived from the engine
    when absent).
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        projections: Iterable[Projection],
        *,
        types: EventTypes | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 1.0,
        claim_interval: float = 1.0,
        database: KeelSettings | DatabaseSettings | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("a projection batch holds at least one event", batch_size=batch_size)
        self.session_factory = session_factory
        self.projections = check_projections(projections)
        self.types = types if types is not None else default_event_types
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.claim_interval = claim_interval
        self.database = database
        self._wake = asyncio.Event()
        self._stopping = False
        self._owned: frozenset[str] = frozenset()

    @property
    def owned(self) -> frozenset[str]:
        """The projections this worker ran on its last round (empty when it is not running)."""
        return self._owned

    def projection(self, name: str) -> Projection:
        """The projection called ``name``; an unknown name is a ConfigurationError listing the known ones."""
        try:
            return self.projections[name]
        except KeyError:
            raise ConfigurationError(
                f"no projection named {name!r} (known: {', '.join(sorted(self.projections)) or 'none'})",
                projection=name,
            ) from None

    async def step(self, name: str) -> int:
        """Apply ``name``'s next batch in one transaction; how many events it applied."""
        applied, _ = await step(self.session_factory, self.projection(name), self.types, self.batch_size)
        return applied

    async def catch_up(self, name: str) -> int:
        """Apply batches until ``name`` has read every visible event; its checkpoint then."""
        projection = self.projection(name)
        while True:
            applied, position = await step(self.session_factory, projection, self.types, self.batch_size)
            if applied < self.batch_size:
                return position

    async def replay(self, name: str, progress: Progress | None = None) -> int:
        """Rebuild ``name`` from position 0 (``reset`` then every event); its checkpoint at the end.

        Interrupted (a crash, Ctrl-C, SIGTERM), a replay resumes where its
        last committed batch ended when called again: the rewind happens
        once, when no replay of ``name`` is under way.
        """
        projection = self.projection(name)
        async with self.session_factory() as session, session.begin():
            position = await session.run_sync(lambda s: _checkpoints.lock(s.connection(), name))
            target = await session.run_sync(lambda s: _checkpoints.replay_mark(s.connection(), name))
            if target is None:
                target = await session.run_sync(lambda s: _checkpoints.head(s.connection()))
                await projection.reset(session)
                await session.run_sync(lambda s: _checkpoints.start_replay(s.connection(), name, target))
                position = 0
        if progress is not None:
            progress(position, target)
        while True:
            applied, position = await step(self.session_factory, projection, self.types, self.batch_size)
            if progress is not None:
                progress(position, max(target, position))
            if applied < self.batch_size:
                break
        async with self.session_factory() as session, session.begin():
            await session.run_sync(lambda s: _checkpoints.finish_replay(s.connection(), name))
        return position

    async def status(self) -> list[ProjectionStatus]:
        """Every projection's checkpoint, the head position and the lag between, sorted by name."""
        async with self.session_factory() as session:
            head = await session.run_sync(lambda s: _checkpoints.head(s.connection()))
            rows = await session.run_sync(
                lambda s: _checkpoints.all_checkpoints(s.connection(), list(self.projections))
            )
        return [ProjectionStatus(r.name, r.position, head, max(head - r.position, 0), r.replaying) for r in rows]

    # --- the worker -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop after the batch in hand (safe to call from a signal handler)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Run owned projections until :meth:`request_stop`: at once while full batches come, else on NOTIFY or poll."""
        self._stopping = False
        ownership = self._ownership()
        try:
            while not self._stopping:
                self._wake.clear()
                owned = await ownership.refresh()
                self._owned = frozenset(owned)
                busy = False
                for name in sorted(owned):
                    if self._stopping or not ownership.holds(name):
                        break
                    try:
                        busy = await self.step(name) >= self.batch_size or busy
                    except Exception:
                        _logger.exception("projection %r: batch failed, retrying on the next round", name)
                if busy or self._stopping:
                    continue
                # Unowned projections are tried again within claim_interval: that bounds the takeover.
                wait = self.poll_interval if len(owned) == len(self.projections) else self.claim_interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait, self.poll_interval))
        finally:
            self._owned = frozenset()
            await ownership.close()

    async def run_until_signalled(self) -> None:
        """:meth:`run`, stopping after the batch in hand on SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for number in signals:
            loop.add_signal_handler(number, self.request_stop)
        try:
            await self.run()
        finally:
            for number in signals:
                loop.remove_signal_handler(number)

    def _ownership(self) -> AdvisoryOwnership | EveryProjection:
        engine = self.session_factory.kw.get("bind")
        if engine is None or engine.dialect.name != "postgresql":
            return EveryProjection(self.projections)
        database = self.database or DatabaseSettings(url=engine.url.render_as_string(hide_password=False))
        return AdvisoryOwnership(database, self.projections, self._wake)
