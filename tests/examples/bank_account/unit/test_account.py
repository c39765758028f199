"""The bank account in memory: the overdraft rule, snapshots every 50 events, the projection's fold."""

from __future__ import annotations

import pytest
from examples.bank_account.domain import Account, OverdraftExceeded
from examples.bank_account.handlers import Accounts

from keel.testing import InMemoryEventStore


def test_a_withdrawal_may_use_the_overdraft_but_not_exceed_it() -> None:
    """The balance may go down to -overdraft_limit; one unit further is an OverdraftExceeded domain error."""
    account = Account.open("a-1", "ada", overdraft_limit=100)
    account.deposit(50)
    account.withdraw(150)
    assert account.balance == -100
    with pytest.raises(OverdraftExceeded) as refused:
        account.withdraw(1)
    assert refused.value.code == "overdraft_exceeded"
    assert account.balance == -100
    assert len(account.pull_events()) == 3


async def test_the_repository_snapshots_every_50_events_and_loads_the_same_account() -> None:
    """Saved through the in-memory store, a 120-event account has a snapshot at 100 and loads identically."""
    store = InMemoryEventStore()
    repository = Accounts(store)
    account = Account.open("a-2", "bob")
    await repository.save(account)
    for amount in range(1, 120):
        account.deposit(amount)
        await repository.save(account)
    snapshot = await store.load_snapshot("account-a-2")
    assert snapshot is not None
    assert snapshot.version == 100
    loaded = await repository.get("a-2")
    assert (loaded.balance, loaded.version, loaded.owner) == (account.balance, 120, "bob")
