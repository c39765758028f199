"""The relay: publishes committed rows once, in order per key, with backoff, parking and retention."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.config import OutboxSettings
from keel.domain.messages import utcnow
from keel.domain.ports import OutgoingMessage
from keel.outbox import OutboxRelay, outbox_status, purge, retry_parked
from tests.integration.outbox.conftest import allocate, outbox_rows, seed
from tests.models import AppUnitOfWork
from tests.support.polling import eventually
from tests.support.recording_bus import RecordingEventBus


def fast(**overrides: object) -> OutboxSettings:
    values: dict[str, object] = {"poll_interval": 0.05, "backoff_initial": 0.0, "backoff_max": 0.0, "jitter": 0.0}
    return OutboxSettings.model_validate({**values, **overrides})


class Clock:
    """A settable clock for backoff tests."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def drain(relays: list[OutboxRelay], session_factory: async_sessionmaker[AsyncSession], timeout: float) -> None:
    """Run ``relays`` side by side until no row is pending, then stop them."""
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await eventually(lambda: nothing_pending(session_factory), timeout=timeout)
    finally:
        for relay in relays:
            relay.request_stop()
        await asyncio.gather(*tasks)


async def nothing_pending(session_factory: async_sessionmaker[AsyncSession]) -> bool:
    return (await outbox_status(session_factory)).pending == 0


def positions_by_key(bus: RecordingEventBus, positions: dict[str, int]) -> Iterator[list[int]]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for message in bus.published:
        if message.ordering_key is not None:
            by_key[message.ordering_key].append(positions[message.message_id])
    return iter(by_key.values())


async def test_the_relay_publishes_committed_rows_and_marks_them(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Each row becomes one message (body, attributes, ordering key, event id) and is marked published."""
    await seed(uow_factory, "LAMP")
    await allocate(uow_factory, "LAMP", times=3)
    bus = RecordingEventBus()
    result = await OutboxRelay(bus, session_factory, settings=fast()).process_batch()
    assert (result.claimed, result.published, result.failed) == (3, 3, 0)
    rows = await outbox_rows(session_factory)
    assert bus.ids() == [row["id"] for row in rows]
    message = bus.published[0]
    assert message.topic == "allocations"
    assert message.ordering_key == "LAMP"
    assert message.data == str(rows[0]["payload"]).encode()
    assert message.attributes["event_id"] == message.message_id
    assert {row["status"] for row in rows} == {"published"}
    assert all(row["published_at"] is not None for row in rows)
    assert (await OutboxRelay(bus, session_factory).process_batch()).claimed == 0


@pytest.mark.slow
async def test_two_relays_publish_thousands_of_rows_exactly_once_in_key_order(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Two relays side by side over 2,000 rows: every message once, each key's messages in commit order."""
    skus = [f"SKU-{n}" for n in range(20)]
    await seed(uow_factory, *skus)
    for round_ in range(5):
        await asyncio.gather(*(allocate(uow_factory, sku, times=20) for sku in skus[round_ % 2 :: 2]))
        await asyncio.gather(*(allocate(uow_factory, sku, times=20) for sku in skus[1 - round_ % 2 :: 2]))
    rows = await outbox_rows(session_factory)
    assert len(rows) == 2000
    bus = RecordingEventBus()
    relays = [OutboxRelay(bus, session_factory, settings=fast(batch_size=50)) for _ in range(2)]
    await drain(relays, session_factory, timeout=60)
    assert sorted(bus.ids()) == sorted(str(row["id"]) for row in rows)
    positions = {str(row["id"]): int(str(row["position"])) for row in rows}
    for sequence in positions_by_key(bus, positions):
        assert sequence == sorted(sequence)


async def test_order_per_key_holds_when_publishes_fail(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """With a third of the publishes refused, two relays still deliver each key's messages in order, all of them."""
    skus = [f"K{n}" for n in range(6)]
    await seed(uow_factory, *skus)
    for _ in range(4):
        await asyncio.gather(*(allocate(uow_factory, sku, times=10) for sku in skus))
    chance = random.Random(7)

    def flaky(message: OutgoingMessage) -> bool:
        return chance.random() < 0.3

    bus = RecordingEventBus(fail=flaky)
    relays = [OutboxRelay(bus, session_factory, settings=fast(batch_size=15, max_attempts=100)) for _ in range(2)]
    await drain(relays, session_factory, timeout=60)
    rows = await outbox_rows(session_factory)
    assert sorted(bus.ids()) == sorted(str(row["id"]) for row in rows)
    positions = {str(row["id"]): int(str(row["position"])) for row in rows}
    for sequence in positions_by_key(bus, positions):
        assert sequence == sorted(sequence)


async def test_a_failing_message_backs_off_then_parks_and_holds_its_key(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Each failure pushes available_at out exponentially; after max_attempts the row is parked with its error."""
    await seed(uow_factory, "LAMP")
    await allocate(uow_factory, "LAMP", times=2)
    first_id = str((await outbox_rows(session_factory))[0]["id"])
    bus = RecordingEventBus(fail=lambda message: message.message_id == first_id)
    clock = Clock()
    settings = OutboxSettings(max_attempts=3, backoff_initial=10, backoff_max=15, jitter=0)
    relay = OutboxRelay(bus, session_factory, settings=settings, clock=clock)
    waits = []
    for _ in range(3):
        result = await relay.process_batch()
        assert (result.published, result.failed) == (0, 1)  # the second row waits behind the first
        head = (await outbox_rows(session_factory))[0]
        waits.append((head["available_at"] - clock.now).total_seconds())  # type: ignore[operator]
        assert (await relay.process_batch()).claimed == 0  # backing off
        clock.now += timedelta(seconds=20)
    assert waits == [10.0, 15.0, 0.0]
    status = await outbox_status(session_factory, now=clock.now)
    assert (status.pending, status.parked) == (1, 1)
    [parked] = status.parked_messages
    assert parked.id == first_id
    assert parked.attempts == 3
    assert parked.event_type == "Allocated"
    assert parked.last_error is not None
    assert "injected" in parked.last_error
    assert (await relay.process_batch()).claimed == 0  # parked, the key stays blocked
    bus.fail = None
    assert await retry_parked(session_factory) == 1
    assert (await relay.process_batch()).published == 2
    assert bus.ids()[0] == first_id


async def test_retention_deletes_published_rows(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """delete_published drops rows at once; otherwise purge removes published rows past their retention."""
    await seed(uow_factory, "A", "B")
    await allocate(uow_factory, "A")
    await OutboxRelay(RecordingEventBus(), session_factory, settings=fast(delete_published=True)).process_batch()
    assert await outbox_rows(session_factory) == []
    await allocate(uow_factory, "B")
    await OutboxRelay(RecordingEventBus(), session_factory).process_batch()
    settings = OutboxSettings(published_retention=60)
    assert await purge(session_factory, settings) == (0, 0)
    assert await purge(session_factory, settings, now=utcnow() + timedelta(seconds=61)) == (1, 0)
    assert await outbox_rows(session_factory) == []


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_notify_wakes_the_relay_long_before_its_poll(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """On PostgreSQL a commit's NOTIFY wakes a relay that would otherwise poll only every 30 s."""
    await seed(uow_factory, "LAMP")
    bus = RecordingEventBus()
    relay = OutboxRelay(bus, session_factory, settings=OutboxSettings(poll_interval=30))
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.3)  # let it finish its first round and wait
        latencies = []
        for count in range(1, 6):
            started = asyncio.get_running_loop().time()
            await allocate(uow_factory, "LAMP")
            await bus.wait_for(count, timeout=5)
            latencies.append(asyncio.get_running_loop().time() - started)
        assert max(latencies) < 2.0, latencies
    finally:
        relay.request_stop()
        await task


async def test_the_relay_outlives_a_database_it_cannot_reach(caplog: pytest.LogCaptureFixture) -> None:
    """Unreachable PostgreSQL: the relay logs that it polls only and that batches fail, and still stops on request."""
    from keel.config import DatabaseSettings
    from keel.infrastructure.database import create_engine, create_session_factory

    engine = create_engine(DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_timeout=1))
    relay = OutboxRelay(RecordingEventBus(), create_session_factory(engine), settings=fast(poll_interval=0.01))
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: "a batch failed" in caplog.text, timeout=20)
        assert "cannot LISTEN" in caplog.text
    finally:
        relay.request_stop()
        await task
        await engine.dispose()
    assert relay.stopping
