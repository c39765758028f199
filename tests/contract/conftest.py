"""One contract, three implementations: in-memory, SQLite and PostgreSQL (direct and through PgBouncer).

Overrides the suite's ``backend`` fixture with two more values, ``memory``
and ``postgres-pgbouncer`` (PostgreSQL behind a transaction-mode PgBouncer);
``uow`` hands out fresh units of work over one shared data set, as a message
bus's ``uow_factory`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel.testing import InMemoryStore, in_memory_unit_of_work
from tests.conftest import PGBOUNCER
from tests.contract.models import ContractUnitOfWork

IMPLEMENTATIONS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), PGBOUNCER]
InMemoryContractUnitOfWork = in_memory_unit_of_work(ContractUnitOfWork)


@pytest.fixture(params=IMPLEMENTATIONS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_uow(backend: str, request: pytest.FixtureRequest) -> Callable[[], Any]:
    """A factory of fresh units of work over this test's (empty) data."""
    if backend == "memory":
        store = InMemoryStore()
        return lambda: InMemoryContractUnitOfWork(store)
    session_factory = request.getfixturevalue("session_factory")
    return lambda: ContractUnitOfWork(session_factory)
