"""The twin's cache participant: the same guards as the SQL one, taken from the workspace.

``InMemoryUnitOfWork(cache=...)`` runs it, so a unit test that shares an
:class:`keel.cache.InMemoryCache` with code reading it sees what a commit
invalidates. The twin's repositories read the store itself, never the cache.
It invalidates every row the workspace holds (loaded or changed), a
superset of what the SQL unit of work invalidates: harmless in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

from sqlalchemy import inspect

from keel.domain.messages import DomainEvent
from keel.domain.ports import Cache
from keel.infrastructure.cache._entities import entity_guard, model_name
from keel.service_layer.participants import Participant


class TwinCacheInvalidation(Participant[Any]):
    """Holds the workspace's guards before the twin commits and releases them after."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._holds: list[tuple[list[str], str]] = []

    async def before_flush(self, uow: Any, events: Sequence[DomainEvent]) -> None:
        workspace = uow.workspace
        rows = chain(workspace.identity, workspace._removed, workspace._set_rows, workspace._set_deleted)
        guards: set[str] = set()
        for model, key in rows:
            name = model_name(inspect(model))
            guards.update((entity_guard(name, key), f"{name}:#lists"))
        if guards:
            ordered = sorted(guards)
            self._holds.append((ordered, await self.cache.begin_invalidation(ordered)))

    async def after_commit(self, uow: Any, events: Sequence[DomainEvent]) -> None:
        holds, self._holds = self._holds, []
        for guards, token in holds:
            await self.cache.end_invalidation(guards, token)
