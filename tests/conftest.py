"""Fixtures shared by the whole suite: one database per backend, clean per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, keel_metadata
from tests.support.pgbouncer import pgbouncer_port as pgbouncer_port
from tests.support.pgbouncer import pgbouncer_url as pgbouncer_url
from tests.support.postgres_cluster import private_postgres as private_postgres
from tests.support.postgres_cluster import replicated_postgres as replicated_postgres
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

#: pytester runs the unit-test guard of tests/unit/conftest.py on sample suites.
pytest_plugins = ["pytester"]

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
#: PostgreSQL through a private PgBouncer in transaction pooling mode (``KEEL_DATABASE__PGBOUNCER=true``).
PGBOUNCER = pytest.param("postgres-pgbouncer", marks=[pytest.mark.postgres, pytest.mark.pgbouncer])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """An async URL to a database created for this test session (dropped afterwards)."""
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    yield url
    drop_postgres_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on; tests using it run once per backend."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    if backend == "postgres-pgbouncer":
        return str(request.getfixturevalue("pgbouncer_url"))
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def database_settings(database_url: str, backend: str) -> DatabaseSettings:
    return DatabaseSettings(
        url=database_url, pool_size=5, max_connections=30, pgbouncer=backend == "postgres-pgbouncer"
    )


_PREPARED: set[tuple[str, int, frozenset[str]]] = set()


async def reset_schema(engine: AsyncEngine, metadata: MetaData) -> None:
    """Give the test empty tables: created once per database, then truncated."""
    # Keyed by the table set too: models imported later in the session add tables.
    key = (str(engine.url), id(metadata), frozenset(metadata.tables))
    async with engine.begin() as conn:
        if key not in _PREPARED or engine.dialect.name == "sqlite":
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            _PREPARED.add(key)
        elif metadata.sorted_tables:
            names = ", ".join(engine.dialect.identifier_preparer.format_table(t) for t in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def engine(database_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's backend with every ``Base`` table and keel's own tables empty."""
    engine = create_engine(database_settings)
    await reset_schema(engine, Base.metadata)
    await reset_schema(engine, keel_metadata)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)
