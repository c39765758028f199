"""Property: loading from any snapshot plus the events after it equals replaying the whole stream."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.event_store import EventSourcedRepository, SqlAlchemyEventStore
from tests.conftest import BACKENDS
from tests.contract.event_store_models import Account


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The SQL backends: the event store has no in-memory twin."""
    return str(request.param)


class SnapshottedAccounts(EventSourcedRepository[Account]):
    aggregate_type = Account
    snapshot_every = 1_000_000  # loads use snapshots; the test places them itself


movements = st.lists(st.tuples(st.booleans(), st.integers(1, 50)), max_size=25)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=movements, cut=st.integers(0, 30), batch=st.integers(1, 6))
async def test_snapshot_plus_tail_equals_a_full_replay(
    session_factory: async_sessionmaker[AsyncSession], moves: list[tuple[bool, int]], cut: int, batch: int
) -> None:
    """Whatever the events, the snapshot's place and the commit sizes, both loads give the same state."""
    store = SqlAlchemyEventStore(session_factory)
    plain = EventSourcedRepository(store, Account)
    snapshotted = SnapshottedAccounts(store)
    id = uuid.uuid4().hex
    account = Account.open(id, "prop")
    for index, (is_deposit, amount) in enumerate(moves, start=1):
        if is_deposit or amount > account.balance:
            account.deposit(amount)
        else:
            account.withdraw(amount)
        if index % batch == 0:
            await plain.save(account)
    await plain.save(account)
    at = min(cut, account.version) or 1
    history = await store.read_stream(account.stream_id, to_version=at)
    partial = Account(id)
    for recorded in history:
        partial.replay(recorded.event, recorded.version)
    await store.save_snapshot(account.stream_id, at, partial.snapshot_state())

    replayed = await plain.load(id)
    restored = await snapshotted.load(id)
    assert replayed is not None
    assert restored is not None
    assert restored.snapshot_state() == replayed.snapshot_state() == account.snapshot_state()
    assert restored.version == replayed.version == account.version
