"""What a unit of work with a cache wrote: recorded per session, turned into guards to invalidate.

Two session listeners (installed once per process, active only on sessions
a cache-bound unit of work opened) record every flushed change, including
autoflushes long before the commit, and every set-based statement
(``update_many``, ``delete_many``, ``insert_many``, hand-written
``update(Model)``). Guards:

* ``<model>:<id>`` for each changed or deleted entity;
* ``<model>:#lists`` for any write to the model (cached lists and pages);
* ``<model>:#all`` for set-based writes, whose rows are unknown: every
  cached entity of the model depends on it.

Raw SQL text (``session.execute(text("UPDATE ..."))``) is invisible here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, ORMExecuteState, Session
from sqlalchemy.orm.attributes import instance_state

from keel.domain.ports import Cache
from keel.infrastructure.cache._entities import entity_guard, model_name

CACHE = "keel.cache"
CHANGES = "keel.cache.changes"


@dataclass
class Changes:
    """Guards touched by one session's writes since its last commit."""

    entities: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    set_based: set[str] = field(default_factory=set)

    def guards(self) -> list[str]:
        found = set(self.entities)
        found.update(f"{m}:#lists" for m in self.models)
        found.update(f"{m}:#all" for m in self.set_based)
        return sorted(found)

    def clear(self) -> None:
        self.entities.clear()
        self.models.clear()
        self.set_based.clear()


def bind_cache(session: AsyncSession | Session, cache: Cache) -> None:
    """Give ``session`` a cache: repositories on it read through it, and its writes are recorded."""
    install()
    session.info[CACHE] = cache
    session.info[CHANGES] = Changes()


def cache_of(session: AsyncSession | Session) -> Cache | None:
    cache: Cache | None = session.info.get(CACHE)
    return cache


def changes_of(session: AsyncSession | Session) -> Changes | None:
    changes: Changes | None = session.info.get(CHANGES)
    return changes


def writes_pending(session: AsyncSession, mapper: Mapper[Any]) -> bool:
    """Whether this transaction wrote, or is about to write, rows of ``mapper``'s model.

    Its reads must then bypass the cache both ways: the database shows it
    its own uncommitted rows, which must never be filled in for others, and
    the cache would hide them from it.
    """
    changes = changes_of(session)
    name = model_name(mapper)
    if changes is not None and name in changes.models:
        return True
    sync = session.sync_session
    base = mapper.base_mapper
    states = chain(sync._new.keys(), sync.identity_map._modified, sync._deleted.keys())
    return any(state.mapper.base_mapper is base for state in states)


@functools.cache
def install() -> None:
    """Register the recording listeners (once per process)."""
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _after_statement)


def _after_flush(session: Session, _context: Any) -> None:
    changes = changes_of(session)
    if changes is None:
        return
    # "new", "dirty" and "deleted" still show what this flush wrote.
    for entity in chain(session.new, session.dirty, session.deleted):
        state = instance_state(entity)
        name = model_name(state.mapper)
        changes.models.add(name)
        if state.key is not None:
            changes.entities.add(entity_guard(name, state.key[1]))


def _after_statement(execute: ORMExecuteState) -> None:
    if execute.is_select:
        return
    changes = changes_of(execute.session)
    if changes is None or not (execute.is_update or execute.is_delete or execute.is_insert):
        return
    mapper = execute.bind_mapper
    if mapper is not None:
        name = model_name(mapper)
    else:
        table = getattr(execute.statement, "table", None)
        if table is None:
            return
        name = str(getattr(table, "fullname", table))
    changes.models.add(name)
    if not execute.is_insert:
        changes.set_based.add(name)
