"""A real lost COMMIT acknowledgement on PostgreSQL: the connection dies after the server committed.

A proxy between asyncpg and the server forwards the client's COMMIT, waits
for the server's CommandComplete, swallows it and cuts the connection. The
bus (with the container's policy, which retries a dropped connection)
retries, and the record written with the first attempt's effects makes the
retry a recognised repeat instead of a second application.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel import CommandAlreadyHandledError, MessageBus
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.processed_commands import RecordProcessedCommands
from tests.integration.test_exactly_once import RETRY_UNAVAILABLE, Bump, bump, counter_value, records, seed
from tests.models import AppUnitOfWork
from tests.support.pg_proxy import LosingProxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[LosingProxy]:
    url = make_url(postgres_url)
    async with LosingProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy


@pytest.fixture
async def proxied_factory(
    engine: AsyncEngine, postgres_url: str, proxy: LosingProxy
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions whose connections run through the proxy (``engine`` has reset the tables)."""
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    proxied = create_engine(DatabaseSettings(url=url.render_as_string(hide_password=False), pool_size=2))
    yield create_session_factory(proxied)
    await proxied.dispose()


async def test_a_lost_commit_reply_does_not_apply_the_command_twice(
    proxied_factory: async_sessionmaker[AsyncSession], proxy: LosingProxy
) -> None:
    """The server committed, the client saw the connection die: the retry is recognised and the effect applied once."""
    await seed(proxied_factory)
    recorder = RecordProcessedCommands()
    bus = MessageBus(
        lambda: AppUnitOfWork(proxied_factory, participants=[recorder]),
        command_handlers={Bump: bump},
        command_retry=RETRY_UNAVAILABLE,
    )
    proxy.arm()
    with pytest.raises(CommandAlreadyHandledError):
        await bus.handle(Bump(counter_id=1), idempotency_key="lost-ack")
    assert proxy.commits_lost == 1
    assert bus.stats.command_retries == 1
    assert bus.stats.commands_already_handled == 1
    assert await counter_value(proxied_factory) == 1
    assert await records(proxied_factory) == [("lost-ack", "Bump")]


async def test_the_proxy_really_loses_the_reply_of_a_committed_transaction(
    proxied_factory: async_sessionmaker[AsyncSession], proxy: LosingProxy
) -> None:
    """The harness reproduces the hazard: without the record, the same lost reply applies the command twice."""
    await seed(proxied_factory)
    bus = MessageBus(
        lambda: AppUnitOfWork(proxied_factory), command_handlers={Bump: bump}, command_retry=RETRY_UNAVAILABLE
    )
    proxy.arm()
    assert await bus.handle(Bump(counter_id=1)) == 2
    assert proxy.commits_lost == 1
    assert bus.stats.command_retries == 1
    assert await counter_value(proxied_factory) == 2
