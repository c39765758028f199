"""Fixtures for the allocation example: its container bound to the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.notifications import RecordingNotifications
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.config import KeelSettings
from keel.container import running

#: Retries sized for the contention tests (50 writers on one row); short waits keep them quick.
TEST_BUS = {"max_attempts": 100, "backoff_initial": 0.001, "backoff_max": 0.01, "jitter": 0.01}


@pytest.fixture
def notifications() -> RecordingNotifications:
    return RecordingNotifications()


@pytest.fixture
async def container(engine: AsyncEngine, notifications: RecordingNotifications) -> AsyncIterator[AllocationContainer]:
    """The example's own container, with the test engine and a recording notifier swapped in."""
    container = AllocationContainer()
    container.settings.override(providers.Object(KeelSettings(bus=TEST_BUS)))
    container.engine.override(providers.Object(engine))
    container.notifications.override(providers.Object(notifications))
    async with running(container):
        yield container
