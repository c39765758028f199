"""A small circuit breaker for the cache's backend calls.

Why not a library: the breaker sits on every cache call, a hit included
(tens of microseconds in all), and must only decide "try the network or
not". ``purgatory`` (the maintained asyncio breaker) awaits a factory lookup
and dispatches its state changes through its own message bus on every call,
and ``aiobreaker`` has not been released since 2021. What is needed here is a
consecutive-failure counter and a clock, in a few lines.
"""

from __future__ import annotations

import time


class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive failures; one trial call after ``reset_after`` seconds.

    Not thread-safe; meant for one event loop (asyncio code between awaits
    runs without interleaving).
    """

    __slots__ = ("_failures", "_opened_at", "_trial", "reset_after", "threshold")

    def __init__(self, *, threshold: int = 3, reset_after: float = 5.0) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def is_open(self) -> bool:
        """Whether calls are being refused right now (a half-open trial in flight counts as open)."""
        return self._opened_at is not None and (self._trial or not self._trial_due())

    def allow(self) -> bool:
        """Whether a call may go to the backend now; in half-open state only one at a time does."""
        if self._opened_at is None:
            return True
        if self._trial or not self._trial_due():
            return False
        self._trial = True
        return True

    def succeeded(self) -> bool:
        """Record a success; True when this closed an open breaker (the backend is back)."""
        reopened = self._opened_at is not None
        self._failures = 0
        self._opened_at = None
        self._trial = False
        return reopened

    def failed(self) -> bool:
        """Record a failure; True when this opened the breaker (or re-opened it after a failed trial)."""
        self._failures += 1
        if self._opened_at is not None:
            self._opened_at = time.monotonic()
            self._trial = False
            return False
        if self._failures >= self.threshold:
            self._opened_at = time.monotonic()
            return True
        return False

    def _trial_due(self) -> bool:
        return self._opened_at is not None and time.monotonic() - self._opened_at >= self.reset_after
