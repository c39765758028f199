"""The domain's ports: keel's repositories follow them, and a unit of work builds any class that does."""

from __future__ import annotations

from typing import Any, Self

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork, UnitOfWorkError
from keel.cache import InMemoryCache, RedisCache
from keel.domain.ports import Cache, Repository, UnitOfWorkRepository, builds_from_unit_of_work
from keel.event_store import EventSourcedRepository, EventStore, SqlAlchemyEventStore
from keel.infrastructure.declared_repositories import DeclaredRepositories
from keel.testing import InMemoryRepository, InMemoryUnitOfWork
from tests.models import Product


def as_port(repository: Repository[Product]) -> Repository[Product]:
    """mypy checks each call: the argument must satisfy the port."""
    return repository


class Tally:
    """A repository of keel's shape that is no subclass of keel's: it counts what it was given."""

    def __init__(self, uow: Any, model: type[Any] | None) -> None:
        self.uow = uow
        self.model = model

    @classmethod
    def for_unit_of_work(cls, uow: Any, model: type[Any] | None = None) -> Self:
        return cls(uow, model)


def as_buildable(repository: type[UnitOfWorkRepository]) -> type[UnitOfWorkRepository]:
    return repository


class TallyUnitOfWork(SqlAlchemyUnitOfWork):
    tally: Tally


class InMemoryTallyUnitOfWork(InMemoryUnitOfWork):
    tally: Tally


def test_keel_repositories_satisfy_the_repository_port(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """The SQL repository and its twin are both ``Repository[T]`` (statically, and they build from a unit of work)."""
    as_port(InMemoryRepository(model=Product))
    as_port(SqlAlchemyRepository(session_factory(), model=Product))
    as_buildable(SqlAlchemyRepository)
    as_buildable(InMemoryRepository)
    as_buildable(Tally)
    assert builds_from_unit_of_work(SqlAlchemyRepository)
    assert builds_from_unit_of_work(Tally)
    assert not builds_from_unit_of_work(Product)
    assert not builds_from_unit_of_work(Tally(None, None))


async def test_a_unit_of_work_builds_any_repository_that_follows_the_protocol(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A declared class with ``for_unit_of_work`` is built per ``async with``, bound to that unit of work."""
    uow = TallyUnitOfWork(session_factory)
    async with uow:
        assert isinstance(uow.tally, Tally)
        assert uow.tally.uow is uow
        first = uow.tally
    async with uow:
        assert uow.tally is not first


async def test_the_in_memory_unit_of_work_builds_it_too() -> None:
    """The twin unit of work passes itself to the same classmethod; non-SQL repositories are not twinned."""
    uow = InMemoryTallyUnitOfWork()
    async with uow:
        assert type(uow.tally) is Tally
        assert uow.tally.uow is uow


def test_both_caches_satisfy_the_cache_port() -> None:
    """mypy checks the list's type: InMemoryCache and RedisCache are Caches (no connection is made)."""
    caches: list[Cache] = [InMemoryCache(), RedisCache("redis://127.0.0.1:1/0")]
    assert all(callable(cache.lookup) for cache in caches)


def as_event_store(store: EventStore) -> EventStore:
    """mypy checks the call: the argument must satisfy the event store port."""
    return store


def test_the_sql_event_store_is_an_event_store_and_builds_from_a_unit_of_work() -> None:
    """SqlAlchemyEventStore satisfies EventStore statically; it and the event-sourced repository are declarable."""
    store = SqlAlchemyEventStore(async_sessionmaker[AsyncSession]())
    assert as_event_store(store) is store
    assert builds_from_unit_of_work(SqlAlchemyEventStore)
    assert builds_from_unit_of_work(EventSourcedRepository)


async def test_both_units_of_work_find_their_repositories_with_one_scan(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """DeclaredRepositories under both: one declaration, one lifetime, one error outside ``async with``."""
    sql, twin = TallyUnitOfWork(session_factory), InMemoryTallyUnitOfWork()
    for uow in (sql, twin):
        assert isinstance(uow, DeclaredRepositories)
        assert type(uow)._declared_repositories() == {"tally": (Tally, None)}
        with pytest.raises(UnitOfWorkError, match="exists only inside"):
            _ = uow.tally
        async with uow:
            assert uow.tally.uow is uow
        assert "tally" not in vars(uow)
