"""A ledger projection slowed per event, so a test can interrupt ``keel events replay`` mid-run.

``PROJECTION_TEST_DELAY`` (seconds per event) is not a KEEL_ variable, so keel's settings ignore it.
"""

from __future__ import annotations

import asyncio
import os

from sqlalchemy.ext.asyncio import AsyncSession

from keel.event_store import RecordedEvent
from tests.contract.projection_models import LedgerProjection


class SlowLedger(LedgerProjection):
    """The ledger projection, ``PROJECTION_TEST_DELAY`` seconds per event."""

    async def handle(self, record: RecordedEvent, session: AsyncSession) -> None:
        await asyncio.sleep(float(os.environ.get("PROJECTION_TEST_DELAY", "0")))
        await super().handle(record, session)
