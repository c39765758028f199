"""Where out-of-stock notices go: a port and two adapters."""

from __future__ import annotations

import logging
from typing import Protocol

logger = logging.getLogger("examples.allocation.notifications")


class Notifications(Protocol):
    async def send(self, destination: str, message: str) -> None: ...


class LogNotifications:
    """Writes notices to the log (the service's default; swap in e-mail in production)."""

    async def send(self, destination: str, message: str) -> None:
        logger.warning("to %s: %s", destination, message)


class RecordingNotifications:
    """Keeps notices in memory, for tests and the demo."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, destination: str, message: str) -> None:
        self.sent.append((destination, message))
