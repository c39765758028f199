"""What wakes the relay: LISTEN/NOTIFY on PostgreSQL, a poll timer everywhere.

The listener holds one connection of the engine's pool for itself (asyncpg's
``add_listener`` needs a connection that stays open). When that connection
dies, the relay keeps polling and listens again on its next round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keel.cross_cutting.error import KeelError

_logger = logging.getLogger("keel.outbox")


class NotifyListener:
    """Sets ``wake`` whenever a NOTIFY arrives on ``channel``."""

    def __init__(self, engine: AsyncEngine, channel: str, wake: asyncio.Event) -> None:
        self.engine = engine
        self.channel = channel
        self.wake = wake
        self._connection: AsyncConnection | None = None
        self._driver: Any = None

    @property
    def listening(self) -> bool:
        return self._driver is not None and not self._driver.is_closed()

    async def ensure(self) -> bool:
        """Listen if not listening yet (or any more); whether it listens now."""
        if self.listening:
            return True
        await self.close()
        try:
            self._connection = await self.engine.connect()
            raw = await self._connection.get_raw_connection()
            self._driver = raw.driver_connection
            await self._driver.add_listener(self.channel, self._notified)
        except Exception as exc:  # noqa: BLE001 -- a wake-up that fails must leave the relay polling, whatever broke
            _logger.warning("outbox relay: cannot LISTEN on %r, polling only for now: %s", self.channel, exc)
            await self.close()
            return False
        # Rows committed while nobody listened are found by this first round.
        self.wake.set()
        return True

    def _notified(self, *_: object) -> None:
        self.wake.set()

    async def close(self) -> None:
        connection, driver = self._connection, self._driver
        self._connection = self._driver = None
        if connection is None:
            return
        try:
            if driver is not None and not driver.is_closed():
                await driver.remove_listener(self.channel, self._notified)
            await connection.close()
        except (SQLAlchemyError, OSError, KeelError):
            _logger.debug("outbox relay: closing the LISTEN connection failed", exc_info=True)
            await connection.invalidate()
