"""Property tests run on the in-memory twin, SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel.testing import InMemoryStore, in_memory_unit_of_work
from tests.property.models import WalkUnitOfWork

InMemoryWalkUnitOfWork = in_memory_unit_of_work(WalkUnitOfWork)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_uow(backend: str, request: pytest.FixtureRequest) -> Callable[[], Any]:
    if backend == "memory":
        store = InMemoryStore()
        return lambda: InMemoryWalkUnitOfWork(store)
    session_factory = request.getfixturevalue("session_factory")
    return lambda: WalkUnitOfWork(session_factory)
