"""An HTTP client on the allocation app, its container bound to the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from examples.allocation.api import create_app
from examples.allocation.container import AllocationContainer


@pytest.fixture
async def client(container: AllocationContainer) -> AsyncIterator[httpx.AsyncClient]:
    """Requests go through the ASGI app in process; the container fixture owns the resources."""
    app = create_app(container, manage_resources=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://allocation.test") as client:
        yield client
