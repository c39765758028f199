"""Leaving a unit of work closes its session whatever cancellation arrives, shielded or not."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.models import AppUnitOfWork, Product


async def test_a_cancellation_pending_while_leaving_after_a_commit_still_closes_the_session(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Cancelled right after its commit, the unit of work still closes (no task, no I/O) and the work stays."""
    uow = AppUnitOfWork(session_factory)
    sessions: list[AsyncSession] = []
    left = asyncio.Event()

    async def work() -> None:
        task = asyncio.current_task()
        assert task is not None
        async with uow:
            uow.products.add(Product(sku="LAMP", stock=1))
            await uow.commit()
            sessions.append(uow.session)
            task.cancel()  # delivered at the next suspension: leaving must not be one
        left.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(work())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=30)
    assert left.is_set()
    assert not uow.is_open
    assert not sessions[0].sync_session.in_transaction()
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with AppUnitOfWork(session_factory) as other:
        assert await other.products.count() == 1
