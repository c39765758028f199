"""Readiness is not-ready until the database is at every head, keel's branch and the application's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.config import DatabaseSettings
from keel.infrastructure.database import HealthCheckResult, check_database, create_engine, migrations
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The async URL of a database nothing has touched yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ready.db'}"
        return
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    try:
        yield url
    finally:
        drop_postgres_database(name)


def readiness(url: str, alembic_config: Path | None = None) -> HealthCheckResult:
    async def check() -> HealthCheckResult:
        engine = create_engine(DatabaseSettings(url=url))
        try:
            return await check_database(engine, timeout=10, alembic_config=alembic_config)
        finally:
            await engine.dispose()

    return asyncio.run(check())


def test_readiness_waits_for_keel_and_application_migrations_to_reach_head(fresh_url: str) -> None:
    """Not ready unmigrated, still not ready with only keel's branch, ready at every head."""
    heads = migrations.expected_heads(ALEMBIC_INI)
    assert migrations.keel_heads() <= heads
    assert len(heads) > len(migrations.keel_heads()), "the examples' branches are heads too"

    unmigrated = readiness(fresh_url, alembic_config=ALEMBIC_INI)
    assert not unmigrated.healthy
    assert set(unmigrated.extra["missing_heads"]) == heads
    assert "alembic upgrade heads" in unmigrated.detail

    migrations.upgrade(fresh_url, config_path=ALEMBIC_INI, revision="keel@head")
    keel_only = readiness(fresh_url, alembic_config=ALEMBIC_INI)
    assert not keel_only.healthy
    assert set(keel_only.extra["missing_heads"]) == heads - migrations.keel_heads()

    migrations.upgrade(fresh_url, config_path=ALEMBIC_INI)
    ready = readiness(fresh_url, alembic_config=ALEMBIC_INI)
    assert ready.healthy, ready.detail
    assert readiness(fresh_url).healthy, "without alembic_config only the connection is checked"


def test_readiness_is_not_ready_on_a_revision_the_code_does_not_know(fresh_url: str) -> None:
    """A database at a revision this code lacks (a newer deploy, or a removed file) is not ready either."""
    migrations.upgrade(fresh_url, config_path=ALEMBIC_INI)

    async def stamp_unknown() -> None:
        from sqlalchemy import text

        engine = create_engine(DatabaseSettings(url=fresh_url))
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('from_the_future')"))
        finally:
            await engine.dispose()

    asyncio.run(stamp_unknown())
    result = readiness(fresh_url, alembic_config=ALEMBIC_INI)
    assert not result.healthy
    assert result.extra["unexpected_revisions"] == ["from_the_future"]
    assert result.extra["missing_heads"] == []
