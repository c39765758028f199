"""``CacheStats``: what a cache did, counted, for metrics and tests.

A plain object of counters rather than OpenTelemetry instruments, so the
cache works without the ``otel`` extra; telemetry reads these (or wraps
:attr:`CacheStats.listeners`) to export them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: Called with the counter's name on every increment (a metrics exporter hooks in here).
StatsListener = Callable[[str], None]


@dataclass
class CacheStats:
    """Counters of one cache instance; read them, never reset them behind a running exporter."""

    hits: int = 0
    misses: int = 0
    #: Fills stored, and fills refused because a writer moved the guards meanwhile (the race, caught).
    fills: int = 0
    fills_refused: int = 0
    invalidations: int = 0
    #: Backend calls that failed (timeout, refused connection, ...); each is logged.
    errors: int = 0
    #: Calls skipped because the circuit breaker was open (no network wait at all).
    short_circuited: int = 0
    #: Times the breaker opened.
    breaker_opened: int = 0
    listeners: list[StatsListener] = field(default_factory=list, repr=False)

    def count(self, name: str) -> None:
        """Add one to counter ``name`` and tell the listeners."""
        setattr(self, name, getattr(self, name) + 1)
        for listener in self.listeners:
            listener(name)
