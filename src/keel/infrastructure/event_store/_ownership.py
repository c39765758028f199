"""Which worker runs which projection: session advisory locks on PostgreSQL, everything elsewhere.

On PostgreSQL each worker holds one dedicated connection (opened with
:func:`keel.infrastructure.database.open_listen_connection`, so on the
session-mode ``KEEL_DATABASE__DIRECT_URL`` when PgBouncer runs in
transaction mode: a session advisory lock through a transaction pooler
would be taken on a server connection other clients then reuse). On it the
worker LISTENs to ``keel_events`` and holds ``pg_try_advisory_lock`` per
projection it owns. When the worker dies its connection closes, PostgreSQL
releases the locks, and the next worker to try takes them over.

Ownership is an efficiency, not the safety net: a batch locks its
checkpoint row, so two workers that both believe they own a projection
(a connection that died a moment ago) still apply each event once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from keel.config import DatabaseSettings, KeelSettings
from keel.infrastructure.event_store.tables import EVENTS_CHANNEL

_logger = logging.getLogger("keel.event_store")
#: First key of the two-key advisory locks: "keel" in ASCII plus one (the append lock is the plain "keel").
OWNERSHIP_LOCK_SPACE = 1801807213


class EveryProjection:
    """SQLite (one writer at a time) or no listener: this worker runs every projection, polling."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = set(names)

    async def refresh(self) -> set[str]:
        return set(self.names)

    def holds(self, name: str) -> bool:
        return name in self.names

    async def close(self) -> None:
        """Nothing to release."""


class AdvisoryOwnership:
    """Owns projections by session advisory locks on one dedicated connection, and LISTENs on it."""

    def __init__(self, settings: KeelSettings | DatabaseSettings, names: Iterable[str], wake: asyncio.Event) -> None:
        self.settings = settings
        self.names = sorted(set(names))
        self.wake = wake
        self.owned: set[str] = set()
        self._connection: Any = None

    def _alive(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def refresh(self) -> set[str]:
        """Try to take every projection not owned yet; the ones owned now (none while disconnected)."""
        if not self._alive():
            self.owned.clear()
            await self.close()
            if not await self._connect():
                return set()
        try:
            for name in self.names:
                if name not in self.owned and await self._connection.fetchval(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))", OWNERSHIP_LOCK_SPACE, name
                ):
                    _logger.info("projection %r: owned by this worker", name)
                    self.owned.add(name)
        except Exception as exc:  # noqa: BLE001 -- a broken connection must leave the worker owning nothing, not crash it
            _logger.warning("projection ownership: connection lost, owning nothing for now: %s", exc)
            self.owned.clear()
            await self.close()
        return set(self.owned)

    def holds(self, name: str) -> bool:
        """Whether this worker still owns ``name`` (a closed connection has lost its locks)."""
        if not self._alive():
            self.owned.clear()
        return name in self.owned

    async def _connect(self) -> bool:
        from keel.infrastructure.database import open_listen_connection

        try:
            self._connection = await open_listen_connection(self.settings)
            await self._connection.add_listener(EVENTS_CHANNEL, self._notified)
        except Exception as exc:  # noqa: BLE001 -- whatever broke, the worker retries on its next round
            _logger.warning("projection worker: cannot connect for ownership and LISTEN: %s", exc)
            await self.close()
            return False
        # Events committed while nobody listened are found by the next round.
        self.wake.set()
        return True

    def _notified(self, *_: object) -> None:
        self.wake.set()

    async def close(self) -> None:
        """Close the connection: PostgreSQL releases every lock it held."""
        connection, self._connection = self._connection, None
        self.owned.clear()
        if connection is None:
            return
        try:
            await connection.close(timeout=5)
        except Exception:
            _logger.debug("projection worker: closing the ownership connection failed", exc_info=True)
            connection.terminate()
