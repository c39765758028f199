"""keel_0003 on a migrated database: the events table refuses UPDATE and DELETE; appends NOTIFY on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from keel.event_store import NO_STREAM, SqlAlchemyEventStore
from keel.infrastructure.database import migrations
from keel.infrastructure.event_store.tables import EVENTS_CHANNEL, events
from tests.contract.event_store_models import Deposited
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database after `alembic upgrade heads`."""
    if request.param == "sqlite":
        sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
        migrations.upgrade(sqlite_url, config_path=ALEMBIC_INI)
        yield sqlite_url
        return
    created, name = create_postgres_database()
    if created is None:
        unavailable("PostgreSQL", name)
    assert created is not None
    url = created
    try:
        migrations.upgrade(url, config_path=ALEMBIC_INI)
        yield url
    finally:
        drop_postgres_database(name)


async def _append_then_tamper(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        store = SqlAlchemyEventStore(async_sessionmaker(engine))
        await store.append("migrated-1", [Deposited(amount=1)], expected_version=NO_STREAM)
        refusals = []
        for statement in (update(events).values(version=5), delete(events)):
            with pytest.raises(DBAPIError) as caught:
                async with engine.begin() as conn:
                    await conn.execute(statement)
            refusals.append(str(caught.value.orig))
        assert [r.version for r in await store.read_stream("migrated-1")] == [1]
        return refusals
    finally:
        await engine.dispose()


def test_the_migrated_events_table_refuses_update_and_delete(migrated_url: str) -> None:
    """After `alembic upgrade heads`, the database itself refuses to change or remove a recorded event."""
    refusals = asyncio.run(_append_then_tamper(migrated_url))
    assert "UPDATE refused" in refusals[0]
    assert "DELETE refused" in refusals[1]


@pytest.mark.postgres
async def test_a_committed_append_notifies_the_events_channel(postgres_url: str) -> None:
    """On PostgreSQL a LISTENer on keel_events hears each committed append (and nothing of a rolled-back one)."""
    import asyncpg

    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(events.metadata.create_all)
        heard: asyncio.Queue[str] = asyncio.Queue()
        listener = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            await listener.add_listener(EVENTS_CHANNEL, lambda *args: heard.put_nowait(args[2]))
            store = SqlAlchemyEventStore(async_sessionmaker(engine))
            await store.append("notified-1", [Deposited(amount=1), Deposited(amount=2)])
            assert await asyncio.wait_for(heard.get(), timeout=10) == EVENTS_CHANNEL
            assert heard.empty()
        finally:
            await listener.close()
    finally:
        await engine.dispose()
