"""The balance projection's worker as a real process (`keel events run`) following commands (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from examples.bank_account.domain import Deposit, OpenAccount, Withdraw
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import MessageBus
from tests.examples.bank_account.integration.test_bank import balance_rows
from tests.support.polling import eventually

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


def start_worker(database_url: str) -> subprocess.Popen[bytes]:
    """`python -m keel events run` with the example's projection, on the test database."""
    env = {
        **os.environ,
        "KEEL_DATABASE__URL": database_url,
        "KEEL_EVENT_STORE__PROJECTIONS": "examples.bank_account.projection:PROJECTIONS",
    }
    return subprocess.Popen([sys.executable, "-m", "keel", "events", "run"], env=env)


@pytest.mark.slow
async def test_the_worker_process_follows_commands_as_they_commit(
    bank_bus: MessageBus, session_factory: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    """Commands handled after the worker started show up in bank_balances; SIGTERM stops it cleanly."""
    worker = start_worker(database_url)
    try:
        await bank_bus.handle(OpenAccount(account_id="eve", owner="Eve", overdraft_limit=10))
        for amount in (30, 20):
            await bank_bus.handle(Deposit(account_id="eve", amount=amount))
        await bank_bus.handle(Withdraw(account_id="eve", amount=55))

        async def projected() -> bool:
            return await balance_rows(session_factory) == {"eve": (-5, 3)}

        await eventually(projected, timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 10) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
