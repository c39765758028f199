"""Every backend connection killed with pg_terminate_backend: the pool recovers on the next unit of work."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel import DatabaseUnavailableError
from keel.infrastructure.database import create_session_factory
from tests.faults.conftest import admin_scalar, idle_in_transaction
from tests.models import AppUnitOfWork, Counter
from tests.support.postgres_cluster import PrivateCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: Every client backend but the one asking.
TERMINATE_ALL = (
    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)
CONCURRENT = 4


async def bump(factory: object, counter_id: int) -> None:
    async with AppUnitOfWork(factory) as uow:  # type: ignore[arg-type]
        (await uow.counters.get(counter_id)).value += 1
        await uow.commit()


async def test_all_backends_terminated_in_the_pool_and_mid_transaction_the_next_units_of_work_succeed(
    cluster_engine: AsyncEngine, private_postgres: PrivateCluster
) -> None:
    """Idle pooled connections and open transactions all killed at once: the open ones fail typed, every
    later unit of work (as many at once as the pool holds) succeeds, and no committed change is lost."""
    factory = create_session_factory(cluster_engine)
    async with AppUnitOfWork(factory) as uow:
        for counter_id in range(CONCURRENT):
            uow.counters.add(Counter(id=counter_id, value=1))
        await uow.commit()
    # Warm the pool with CONCURRENT connections, returned idle.
    await asyncio.gather(*(bump(factory, counter_id) for counter_id in range(CONCURRENT)))
    assert cluster_engine.pool.checkedin() >= CONCURRENT  # type: ignore[attr-defined]

    with pytest.raises(DatabaseUnavailableError):
        async with AppUnitOfWork(factory) as open_uow:
            (await open_uow.counters.get(0)).value += 100
            await open_uow.session.execute(text("SELECT 1"))  # in a transaction on a live backend
            killed = await admin_scalar(private_postgres.url, TERMINATE_ALL)
            assert killed >= CONCURRENT
            await open_uow.commit()

    async with asyncio.timeout(10):
        await asyncio.gather(*(bump(factory, counter_id) for counter_id in range(CONCURRENT)))
    assert cluster_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await idle_in_transaction(private_postgres.url) == 0
    async with AppUnitOfWork(factory) as uow:
        assert [(await uow.counters.get(i)).value for i in range(CONCURRENT)] == [3] * CONCURRENT
