"""A database whose migrations were never applied: a fast 500, not retries and a 503."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers
from examples.allocation.api import create_app
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate

from keel import ConfigurationError, DatabaseError, KeelError
from keel.config import DatabaseSettings, KeelSettings
from keel.container import running
from keel.infrastructure.database import create_engine
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    yield url
    drop_postgres_database(name)


@pytest.fixture(params=[False, True], ids=["audit-off", "audit-on"])
def audit(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def unmigrated(empty_database_url: str, audit: bool) -> AsyncIterator[AllocationContainer]:
    container = AllocationContainer()
    settings = KeelSettings(bus={"backoff_initial": 0.001, "jitter": 0}, security={"audit": audit})
    container.settings.override(providers.Object(settings))
    engine = create_engine(DatabaseSettings(url=empty_database_url))
    container.engine.override(providers.Object(engine))
    try:
        async with running(container):
            yield container
    finally:
        await engine.dispose()


async def test_a_command_on_an_unmigrated_database_fails_at_once_with_a_database_error(
    unmigrated: AllocationContainer, audit: bool
) -> None:
    """A missing table is not transient: one attempt, then DatabaseError (audit on: keel_audit named first)."""
    bus = unmigrated.bus()
    with pytest.raises(KeelError) as caught:
        await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=1))
    if audit:
        assert type(caught.value) is ConfigurationError
        assert "keel_audit" in caught.value.message
        assert "run keel's migrations" in caught.value.message
    else:
        assert type(caught.value) is DatabaseError
    assert bus.stats.command_retries == 0


async def test_a_request_on_an_unmigrated_database_is_a_500_problem(
    unmigrated: AllocationContainer, audit: bool
) -> None:
    """Over HTTP the missing table is a server error (500), not "unavailable, retry later" (503)."""
    app = create_app(unmigrated, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://allocation.test") as client:
        response = await client.post("/allocate", json={"orderid": "o1", "sku": "LAMP", "qty": 1})
    assert response.status_code == 500
    assert response.json()["code"] == ("configuration_error" if audit else "database_error")
    assert "retry-after" not in response.headers
    assert unmigrated.bus().stats.command_retries == 0
