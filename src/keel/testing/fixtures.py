"""pytest fixtures for applications built on keel.

Enable them in your top-level ``conftest.py``::

    pytest_plugins = ["keel.testing.fixtures"]

``keel_store``
    A fresh :class:`InMemoryStore` per test: hand it to every in-memory unit
    of work of the test (``FakeUnitOfWork(keel_store)``) so they share data.
``keel_session_factory``
    An ``async_sessionmaker`` on a throwaway SQLite file with every table of
    ``keel.orm.Base.metadata`` created: the real SQL path, still without a
    server. Import your models before the fixture runs.
``keel_cursor_secret``
    A random cursor secret for the test, restored afterwards; use it when a
    test needs cursors signed with a known key.

The async fixtures are declared with ``pytest_asyncio.fixture``, so they work under
pytest-asyncio's default ``asyncio_mode = "strict"`` as well as ``auto``; your
own async tests still need ``@pytest.mark.asyncio`` in strict mode.

Importing this module needs pytest and pytest-asyncio; ``keel.testing`` itself
does not.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.repository.cursor import default_cursor_secret, set_default_cursor_secret
from keel.orm import Base
from keel.testing import InMemoryStore


@pytest.fixture
def keel_store() -> InMemoryStore:
    """An empty in-memory store for this test."""
    return InMemoryStore()


# pytest_asyncio.fixture, not pytest.fixture: strict mode (pytest-asyncio's
# default) leaves a plain async fixture un-awaited and hands the test a generator.
@pytest_asyncio.fixture
async def keel_session_factory(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a fresh SQLite database holding every ``Base`` table."""
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'keel-test.db'}"))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def keel_cursor_secret() -> Iterator[str]:
    """A random process-wide cursor secret for this test (the previous one comes back after)."""
    previous = default_cursor_secret()
    secret = secrets.token_urlsafe(32)
    set_default_cursor_secret(secret)
    try:
        yield secret
    finally:
        set_default_cursor_secret(previous)


__all__ = ["keel_cursor_secret", "keel_session_factory", "keel_store"]
