"""The event store's setup errors name the fix instead of surfacing a driver error."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from keel import ConfigurationError
from keel.event_store import SqlAlchemyEventStore
from tests.contract.event_store_models import Deposited


async def test_missing_tables_say_to_run_the_migrations(tmp_path: Path) -> None:
    """Appending or reading without keel's tables is a ConfigurationError pointing at the migrations."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        store = SqlAlchemyEventStore(async_sessionmaker(engine))
        with pytest.raises(ConfigurationError, match="migrations"):
            await store.append("s-1", [Deposited(amount=1)])
        with pytest.raises(ConfigurationError, match="migrations"):
            await store.read_all()
    finally:
        await engine.dispose()


async def test_a_session_factory_without_an_engine_is_refused() -> None:
    """A standalone store needs an engine to open its own transactions."""
    store = SqlAlchemyEventStore(async_sessionmaker[AsyncSession]())
    with pytest.raises(ConfigurationError, match="bound to an engine"):
        await store.stream_version("s-1")
