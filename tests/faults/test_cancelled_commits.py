"""Tasks cancelled mid-commit hundreds of times: no connection left idle in a transaction, the pool never runs dry."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.infrastructure.database import create_session_factory
from tests.faults.conftest import idle_in_transaction
from tests.models import AppUnitOfWork, Counter
from tests.support.polling import eventually
from tests.support.postgres_cluster import PrivateCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROUNDS = 100
TASKS_PER_ROUND = 4
#: Cancellation points are drawn up to this multiple of a round's measured length, so some commits finish.
LATEST_CANCEL = 2.0


async def test_hundreds_of_cancellations_mid_commit_leave_no_transaction_open_and_the_pool_serving(
    cluster_engine: AsyncEngine, private_postgres: PrivateCluster
) -> None:
    """400 units of work cancelled at random points: none idle in transaction, no checkout lost, no commit lost."""
    factory = create_session_factory(cluster_engine)
    async with AppUnitOfWork(factory) as uow:
        for counter_id in range(TASKS_PER_ROUND):
            uow.counters.add(Counter(id=counter_id, value=0))
        await uow.commit()
    completed = [5] * TASKS_PER_ROUND
    cancelled = 0

    async def bump(counter_id: int) -> None:
        # A counter per task: the round's writers never conflict, so every outcome is done or cancelled.
        async with AppUnitOfWork(factory) as uow:
            (await uow.counters.get(counter_id)).value += 1
            await uow.commit()

    started = time.monotonic()
    for _ in range(5):
        await asyncio.gather(*(bump(counter_id) for counter_id in range(TASKS_PER_ROUND)))
    round_length = (time.monotonic() - started) / 5
    rng = random.Random()
    for _ in range(ROUNDS):
        tasks = [asyncio.create_task(bump(counter_id)) for counter_id in range(TASKS_PER_ROUND)]
        await asyncio.sleep(rng.uniform(0, LATEST_CANCEL * round_length))  # a random cancellation point, not a wait
        for task in tasks:
            task.cancel()
        for counter_id, outcome in enumerate(await asyncio.gather(*tasks, return_exceptions=True)):
            if isinstance(outcome, asyncio.CancelledError):
                cancelled += 1
            elif outcome is None:
                completed[counter_id] += 1
            else:
                raise outcome
    assert cancelled >= ROUNDS, "the storm cancelled too few units of work to mean anything"

    await eventually(lambda: cluster_engine.pool.checkedout() == 0, timeout=5)  # type: ignore[attr-defined]
    await eventually(lambda: _no_idle_transactions(private_postgres.url), timeout=5)
    async with asyncio.timeout(5):
        async with AppUnitOfWork(factory) as uow:
            values = [(await uow.counters.get(counter_id)).value for counter_id in range(TASKS_PER_ROUND)]
    # A cancellation after COMMIT reached the server may still have committed: at least, never less.
    assert all(value >= done for value, done in zip(values, completed, strict=True)), (values, completed)


async def _no_idle_transactions(url: str) -> bool:
    return await idle_in_transaction(url) == 0
