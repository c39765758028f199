"""keel through a real PgBouncer in transaction pooling mode: the bus, and LISTEN on the session-mode URL.

The unit-of-work and repository contract suites also run through it (the
``postgres-pgbouncer`` backend of ``tests/contract``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate, CreateBatch
from examples.allocation.views import allocations
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import ConfigurationError
from keel.config import DatabaseSettings, KeelSettings
from keel.container import running
from keel.infrastructure.database import create_session_factory
from keel.infrastructure.database.direct import create_direct_engine, direct_settings, open_listen_connection

THROUGH_PGBOUNCER = pytest.mark.parametrize(
    "backend", [pytest.param("postgres-pgbouncer", marks=[pytest.mark.postgres, pytest.mark.pgbouncer])]
)


@pytest.fixture
async def container(engine: AsyncEngine) -> AsyncIterator[AllocationContainer]:
    """The example's container on an engine that goes through PgBouncer."""
    container = AllocationContainer()
    bus = {"max_attempts": 100, "backoff_initial": 0.001, "backoff_max": 0.01, "jitter": 0.01}
    container.settings.override(providers.Object(KeelSettings(bus=bus)))
    container.engine.override(providers.Object(engine))
    async with running(container):
        yield container


@THROUGH_PGBOUNCER
async def test_the_bus_handles_concurrent_commands_and_events_through_pgbouncer(
    container: AllocationContainer, engine: AsyncEngine
) -> None:
    """Commands, retried conflicts and event handlers all work when every transaction may change server."""
    assert engine.url.port != 5432  # PgBouncer's own port
    bus = container.bus()
    await bus.handle(CreateBatch(ref="b1", sku="LAMP", qty=10, eta=None))
    await asyncio.gather(*(bus.handle(Allocate(orderid=f"o{n}", sku="LAMP", qty=1)) for n in range(15)))
    allocated = [await allocations(f"o{n}", container.read_only_unit_of_work()) for n in range(15)]
    assert sum(1 for rows in allocated if rows) == 10


@THROUGH_PGBOUNCER
async def test_listen_runs_on_the_direct_url_while_notify_goes_through_pgbouncer(
    engine: AsyncEngine, database_settings: DatabaseSettings, postgres_url: str
) -> None:
    """open_listen_connection uses KEEL_DATABASE__DIRECT_URL; a NOTIFY committed through the pooler arrives."""
    settings = database_settings.model_copy(update={"direct_url": DatabaseSettings(url=postgres_url).url})
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await open_listen_connection(settings)
    try:
        await listener.add_listener("keel_scaling_test", lambda *args: received.put_nowait(args[-1]))
        async with create_session_factory(engine)() as session, session.begin():
            await session.execute(text("SELECT pg_notify('keel_scaling_test', 'hello')"))
        assert await asyncio.wait_for(received.get(), timeout=10) == "hello"
    finally:
        await listener.close()


async def test_the_direct_engine_goes_to_the_direct_url_without_pooler_workarounds() -> None:
    """create_direct_engine builds on KEEL_DATABASE__DIRECT_URL (without connecting until used)."""
    engine = create_direct_engine(
        DatabaseSettings(url="postgresql://u@pooler:6432/db", pgbouncer=True, direct_url="postgresql://u@db/db")
    )
    assert (engine.url.host, engine.url.port) == ("db", None)
    await engine.dispose()


async def test_listening_needs_postgresql() -> None:
    """open_listen_connection on SQLite is a ConfigurationError, not a driver error."""
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        await open_listen_connection(DatabaseSettings(url="sqlite+aiosqlite:///:memory:"))


def test_listening_behind_a_transaction_pooler_needs_a_direct_url() -> None:
    """pgbouncer=true without direct_url is a ConfigurationError naming the variable, not a silent lost LISTEN."""
    with pytest.raises(ConfigurationError, match="KEEL_DATABASE__DIRECT_URL") as caught:
        direct_settings(DatabaseSettings(url="postgresql://u@pooler:6432/db", pgbouncer=True))
    assert caught.value.details["variables"] == ["KEEL_DATABASE__DIRECT_URL"]
    plain = direct_settings(DatabaseSettings(url="postgresql://u@db:5432/db"))
    assert plain.url.port == 5432
    direct = direct_settings(
        DatabaseSettings(url="postgresql://u@pooler:6432/db", pgbouncer=True, direct_url="postgresql://u@db/db")
    )
    assert (direct.url.host, direct.pgbouncer) == ("db", False)
