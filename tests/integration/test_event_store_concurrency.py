"""The event store under real concurrency: optimistic appends on one stream, gap-free tailing of read_all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel import ConcurrencyError, SqlAlchemyUnitOfWork
from keel.config import DatabaseSettings
from keel.event_store import RecordedEvent, SqlAlchemyEventStore
from keel.infrastructure.database import create_engine, create_session_factory
from tests.contract.event_store_models import Deposited

WRITERS = 32


@pytest.fixture
async def wide_engine(engine: AsyncEngine, database_url: str) -> AsyncIterator[AsyncEngine]:
    """A second engine over the test's (emptied) database, with a connection for every writer."""
    wide = create_engine(DatabaseSettings(url=database_url, pool_size=WRITERS + 2, max_connections=WRITERS + 4))
    yield wide
    await wide.dispose()


class EventsUnitOfWork(SqlAlchemyUnitOfWork):
    events: SqlAlchemyEventStore


@pytest.mark.slow
async def test_one_of_32_writers_with_the_same_expected_version_wins_each_round(
    wide_engine: AsyncEngine, backend: str
) -> None:
    """32 concurrent appends at one expected version: exactly one wins per round, versions stay contiguous."""
    store = SqlAlchemyEventStore(create_session_factory(wide_engine))
    rounds = 15 if backend == "postgresql" else 5
    for version in range(rounds):

        async def write(writer: int, expected: int = version) -> bool:
            try:
                await store.append("contested", [Deposited(amount=writer)], expected_version=expected)
            except ConcurrencyError:
                return False
            return True

        outcomes = await asyncio.gather(*(write(w) for w in range(WRITERS)))
        assert sum(outcomes) == 1, f"round {version}: {sum(outcomes)} winners"
    recorded = await store.read_stream("contested")
    assert [r.version for r in recorded] == list(range(1, rounds + 1))
    assert await store.stream_version("contested") == rounds


async def _write(
    store: SqlAlchemyEventStore, factory_engine: AsyncEngine, writer: int, appends: int, backend: str
) -> None:
    """Append ``appends`` batches to the writer's own stream, every other one inside a unit of work.

    On SQLite a writer that waited out the busy timeout behind the others is
    refused with ``ConcurrencyError`` ("the database is locked", nothing
    written), which the bus would retry: the writer retries the same append.
    """
    session_factory = create_session_factory(factory_engine)
    stream = f"writer-{writer}"
    for version in range(0, appends * 5, 5):
        batch = [Deposited(amount=i) for i in range(5)]
        for attempt in range(1, 31):
            try:
                await _append_once(store, session_factory, stream, batch, version)
                break
            except ConcurrencyError:
                if backend != "sqlite" or attempt == 30:
                    raise


async def _append_once(
    store: SqlAlchemyEventStore,
    session_factory: async_sessionmaker[AsyncSession],
    stream: str,
    batch: list[Deposited],
    version: int,
) -> None:
    if version % 10:
        await store.append(stream, batch, expected_version=version)
        return
    # Inside a unit of work the transaction stays open after the insert (another
    # statement runs before the commit): the window in which a reader could skip.
    async with EventsUnitOfWork(session_factory) as uow:
        await uow.events.append(stream, batch, expected_version=version)
        assert await uow.events.stream_version(stream) == version + 5
        await uow.commit()


async def _tail(store: SqlAlchemyEventStore, total: int, writers: asyncio.Future[Any]) -> list[RecordedEvent]:
    """Follow read_all until ``total`` events are seen (failing if the writers finished short)."""
    seen: list[RecordedEvent] = []
    after = 0
    while len(seen) < total:
        page = await store.read_all(after=after, limit=500)
        if not page:
            if writers.done():
                writers.result()  # a writer's error is the news
                page = await store.read_all(after=after, limit=500)
                assert page, f"the tail stopped at {len(seen)} of {total} events"
            else:
                await asyncio.sleep(0)  # yield to the writers; polling, not waiting for a time
                continue
        seen.extend(page)
        after = page[-1].position
    return seen


@pytest.mark.slow
async def test_a_tailing_reader_sees_every_event_once_in_order_while_8_writers_append(
    wide_engine: AsyncEngine, backend: str
) -> None:
    """8 writers on distinct streams, one subscriber on read_all: each event exactly once, in position order."""
    store = SqlAlchemyEventStore(create_session_factory(wide_engine))
    appends = 250 if backend == "postgresql" else 60  # x 5 events x 8 writers: 10,000 on PostgreSQL
    total = 8 * appends * 5
    writers = asyncio.ensure_future(
        asyncio.gather(*(_write(store, wide_engine, w, appends, backend) for w in range(8)))
    )
    seen = await asyncio.wait_for(_tail(store, total, writers), timeout=120)
    await writers
    positions = [r.position for r in seen]
    assert positions == sorted(positions)
    assert len({r.event_id for r in seen}) == total == len(seen)
    everything = await store.read_all()
    assert [r.position for r in everything] == positions
    for writer in range(8):
        versions = [r.version for r in seen if r.stream_id == f"writer-{writer}"]
        assert versions == list(range(1, appends * 5 + 1))
