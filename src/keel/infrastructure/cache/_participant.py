"""``CacheInvalidation``: the commit participant that keeps a unit of work's cache honest.

``before_flush`` (the last participant, so every other participant's
additions are in): flush, so every change is recorded, the root versions
that aggregate locking bumps included; then *hold* the guards of everything
written (``begin_invalidation``: fills refused, generations moved on).
``after_commit``: release the hold and move the generations on again
(``end_invalidation``), so readers that started after the commit fill
fresh values. Nothing happens for a unit of work that wrote nothing, and a
rolled-back one changes nothing in the cache (a failed commit's hold lapses
after the cache's lease).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.domain.messages import DomainEvent
from keel.domain.ports import Cache
from keel.infrastructure.cache._tracking import changes_of
from keel.service_layer.participants import Participant


class CacheInvalidation(Participant[Any]):
    """Invalidates, after commit and without the stale-fill race, what a SQL unit of work wrote."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._holds: list[tuple[list[str], str]] = []

    async def before_flush(self, uow: Any, events: Sequence[DomainEvent]) -> None:
        session = uow.session
        changes = changes_of(session)
        if changes is None:
            return
        sync = session.sync_session
        if sync._new or sync._deleted or sync.identity_map._modified:
            await session.flush()
        guards = changes.guards()
        if guards:
            self._holds.append((guards, await self.cache.begin_invalidation(guards)))

    async def after_commit(self, uow: Any, events: Sequence[DomainEvent]) -> None:
        changes = changes_of(uow.session)
        late = changes.guards() if changes is not None else []
        if changes is not None:
            changes.clear()
        holds, self._holds = self._holds, []
        if not holds and late:
            # Written only by the commit's own flush (after this participant ran).
            holds = [([], await self.cache.begin_invalidation(late))]
        for guards, token in holds:
            await self.cache.end_invalidation(sorted({*guards, *late}), token)
            late = []


def use_cache(uow: Any, cache: Cache) -> None:
    """Give ``uow`` (not open yet) ``cache``: ``uow.cache`` and its invalidation participant, run last."""
    uow.cache = cache
    uow.participants.append(CacheInvalidation(cache))
