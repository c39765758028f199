"""Projections on SQLite and PostgreSQL: exactly-once effect, resume, batches, two runners at once, replay."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import ConfigurationError
from keel.event_store import NO_STREAM, ProjectionRunner, SqlAlchemyEventStore
from tests.contract.event_store_models import Deposited, Opened, Withdrawn
from tests.contract.projection_models import Crash, DepositsOnly, LedgerProjection, rows_of
from tests.support.polling import eventually

Factory = async_sessionmaker[AsyncSession]


async def _seed(session_factory: Factory, streams: int = 5, deposits: int = 9) -> int:
    """``streams`` accounts of 1 + deposits + 1 events each; how many events."""
    store = SqlAlchemyEventStore(session_factory)
    await store.append_many(
        (
            f"acc-{s}",
            [Opened(owner=f"o{s}"), *(Deposited(amount=d + 1) for d in range(deposits)), Withdrawn(amount=1)],
            NO_STREAM,
        )
        for s in range(streams)
    )
    return streams * (deposits + 2)


async def _rows(session_factory: Factory, name: str) -> list[tuple[int, str, int]]:
    async with session_factory() as session:
        return await rows_of(session, name)


async def _count(session_factory: Factory, at_least: int) -> bool:
    return len(await _rows(session_factory, "ledger")) >= at_least


async def test_a_projection_applies_every_event_once_in_global_order(session_factory: Factory) -> None:
    """Caught up, the read model holds one row per event, in position order, and the checkpoint is the head."""
    total = await _seed(session_factory)
    runner = ProjectionRunner(session_factory, [LedgerProjection()], batch_size=7)
    position = await runner.catch_up("ledger")
    rows = await _rows(session_factory, "ledger")
    recorded = await SqlAlchemyEventStore(session_factory).read_all()
    assert [r[0] for r in rows] == [r.position for r in recorded]
    assert len(rows) == total
    assert position == recorded[-1].position
    assert (await runner.status())[0].lag == 0


async def test_a_crash_between_the_writes_and_the_checkpoint_applies_nothing_twice(session_factory: Factory) -> None:
    """A batch that fails half-way rolls back its writes with the checkpoint; the retry applies each event once."""
    await _seed(session_factory)
    recorded = await SqlAlchemyEventStore(session_factory).read_all()
    crashing = LedgerProjection(fail_at=recorded[4].position)
    runner = ProjectionRunner(session_factory, [crashing], batch_size=10)
    with pytest.raises(Crash):
        await runner.step("ledger")
    assert await _rows(session_factory, "ledger") == []
    assert (await runner.status())[0].position == 0
    crashing.fail_at = None
    await runner.catch_up("ledger")
    assert [r[0] for r in await _rows(session_factory, "ledger")] == [r.position for r in recorded]


async def test_a_projection_resumes_from_its_checkpoint_in_a_new_runner(session_factory: Factory) -> None:
    """A new runner (another process, say) continues after the last committed batch."""
    await _seed(session_factory)
    first = ProjectionRunner(session_factory, [LedgerProjection()], batch_size=8)
    assert await first.step("ledger") == 8
    assert await first.step("ledger") == 8
    second_projection = LedgerProjection()
    second = ProjectionRunner(session_factory, [second_projection], batch_size=8)
    await second.catch_up("ledger")
    recorded = await SqlAlchemyEventStore(session_factory).read_all()
    assert second_projection.handled == len(recorded) - 16
    assert [r[0] for r in await _rows(session_factory, "ledger")] == [r.position for r in recorded]


async def test_each_batch_is_at_most_batch_size_events(session_factory: Factory) -> None:
    """``batch_size`` bounds a transaction's events; the last batch holds the rest."""
    total = await _seed(session_factory)
    runner = ProjectionRunner(session_factory, [LedgerProjection()], batch_size=20)
    sizes = []
    while applied := await runner.step("ledger"):
        sizes.append(applied)
    assert sizes == [20] * (total // 20) + ([total % 20] if total % 20 else [])


async def test_two_runners_that_both_believe_they_own_a_projection_apply_each_event_once(
    session_factory: Factory,
) -> None:
    """Concurrent batches of one projection serialise on its checkpoint row: no event is applied twice."""
    await _seed(session_factory, streams=10)
    runners = [ProjectionRunner(session_factory, [LedgerProjection()], batch_size=5) for _ in range(2)]
    await asyncio.gather(*(runner.catch_up("ledger") for runner in runners for _ in range(2)))
    recorded = await SqlAlchemyEventStore(session_factory).read_all()
    assert [r[0] for r in await _rows(session_factory, "ledger")] == [r.position for r in recorded]


async def test_a_filtered_projection_reads_only_its_types_and_catches_up_to_the_head(session_factory: Factory) -> None:
    """``types`` limits the events handled; the checkpoint still reaches the head, so the lag is 0."""
    await _seed(session_factory)
    runner = ProjectionRunner(session_factory, [DepositsOnly()], batch_size=100)
    await runner.catch_up("deposits")
    deposits = await SqlAlchemyEventStore(session_factory).read_all(types=[Deposited])
    assert [r[0] for r in await _rows(session_factory, "deposits")] == [r.position for r in deposits]
    (status,) = await runner.status()
    assert status.lag == 0
    assert status.position == status.head


async def test_replay_rebuilds_from_zero_and_resumes_after_an_interruption(session_factory: Factory) -> None:
    """A replay resets the read model once; interrupted, the next replay continues from the checkpoint."""
    await _seed(session_factory)
    recorded = await SqlAlchemyEventStore(session_factory).read_all()
    runner = ProjectionRunner(session_factory, [LedgerProjection()], batch_size=10)
    await runner.catch_up("ledger")
    interrupted = LedgerProjection(fail_at=recorded[25].position)
    with pytest.raises(Crash):
        await ProjectionRunner(session_factory, [interrupted], batch_size=10).replay("ledger")
    (status,) = await runner.status()
    assert status.replaying
    assert status.position == recorded[19].position
    assert len(await _rows(session_factory, "ledger")) == 20
    seen: list[tuple[int, int]] = []
    resumed = LedgerProjection()
    await ProjectionRunner(session_factory, [resumed], batch_size=10).replay("ledger", lambda p, h: seen.append((p, h)))
    assert resumed.handled == len(recorded) - 20
    assert seen[0] == (recorded[19].position, recorded[-1].position)
    assert seen[-1][0] == recorded[-1].position
    assert [r[0] for r in await _rows(session_factory, "ledger")] == [r.position for r in recorded]
    assert not (await runner.status())[0].replaying


async def test_a_worker_follows_new_events_and_stops_when_asked(session_factory: Factory) -> None:
    """``run`` applies events appended while it runs (NOTIFY on PostgreSQL, polling on SQLite), then stops."""
    runner = ProjectionRunner(session_factory, [LedgerProjection()], batch_size=10, poll_interval=0.05)
    worker = asyncio.create_task(runner.run())
    store = SqlAlchemyEventStore(session_factory)
    await store.append("acc-x", [Opened(owner="x"), Deposited(amount=3)], expected_version=NO_STREAM)
    await eventually(lambda: _count(session_factory, 2), timeout=10)
    runner.request_stop()
    await asyncio.wait_for(worker, 10)


async def test_unknown_or_unnamed_projections_are_configuration_errors(session_factory: Factory) -> None:
    """Two projections under one name, or an unknown name, are refused with a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="two projections"):
        ProjectionRunner(session_factory, [LedgerProjection(), LedgerProjection()])
    with pytest.raises(ConfigurationError, match="no projection named 'nope'"):
        await ProjectionRunner(session_factory, [LedgerProjection()]).step("nope")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_one_worker_owns_a_projection_and_another_takes_over_when_it_stops(session_factory: Factory) -> None:
    """Two workers: one owns the projection, the other idles; stopped, the owner hands it over within a second."""
    await _seed(session_factory)
    first, second = (
        ProjectionRunner(session_factory, [LedgerProjection()], poll_interval=0.2, claim_interval=0.1) for _ in range(2)
    )
    first_task = asyncio.create_task(first.run())
    await eventually(lambda: first.owned == {"ledger"}, timeout=10)
    second_task = asyncio.create_task(second.run())
    await SqlAlchemyEventStore(session_factory).append("early", [Opened(owner="e")], expected_version=NO_STREAM)
    await eventually(lambda: _count(session_factory, 56), timeout=10)
    assert first.owned == {"ledger"}
    assert second.owned == frozenset()
    first.request_stop()
    await asyncio.wait_for(first_task, 10)
    await eventually(lambda: second.owned == {"ledger"}, timeout=5)
    await SqlAlchemyEventStore(session_factory).append("late", [Opened(owner="late")], expected_version=NO_STREAM)
    recorded = await SqlAlchemyEventStore(session_factory).read_all()

    async def caught_up() -> bool:
        return [r[0] for r in await _rows(session_factory, "ledger")] == [r.position for r in recorded]

    await eventually(caught_up, timeout=10)
    second.request_stop()
    await asyncio.wait_for(second_task, 10)
    assert first.owned == second.owned == frozenset()
