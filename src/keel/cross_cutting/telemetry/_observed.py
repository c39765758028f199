"""Counters that live on keel's components (the cache's, the replica router's), exported as metrics.

The cache and the replica router count in plain objects, so they work
without OpenTelemetry. This module turns those counts into instruments:

.. code-block:: python

    record_cache_stats(cache.stats, namespace="app")   # every hit, miss and error -> keel.cache.*
    observe_replica_stats(router.stats)                # keel.db.replica.* read from the counters at export

Both are cheap no-ops without OpenTelemetry; the container calls them for
its own cache and router.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from keel.cross_cutting.telemetry._metrics import KeelMetrics, metrics


class HasListeners(Protocol):
    """A counters object that calls ``listeners`` with a counter's name on every increment (``CacheStats``)."""

    listeners: list[Callable[[str], None]]


#: Cache counter name -> the instrument it adds to.
_CACHE_INSTRUMENTS: dict[str, Callable[[KeelMetrics], Any]] = {
    "hits": lambda m: m.cache_hits,
    "misses": lambda m: m.cache_misses,
    "errors": lambda m: m.cache_errors,
}


class CacheMetricsListener:
    """A ``CacheStats`` listener: hits, misses and errors become ``keel.cache.*`` (attribute ``namespace``)."""

    def __init__(self, namespace: str) -> None:
        self.attributes = {"namespace": namespace}

    def __call__(self, name: str) -> None:
        instrument = _CACHE_INSTRUMENTS.get(name)
        if instrument is not None:
            instrument(metrics()).add(1, self.attributes)


def record_cache_stats(stats: HasListeners, *, namespace: str = "default") -> None:
    """Export ``stats``' hits, misses and errors as ``keel.cache.hits|misses|errors``; once per stats object."""
    if not any(isinstance(listener, CacheMetricsListener) for listener in stats.listeners):
        stats.listeners.append(CacheMetricsListener(namespace))


#: The replica routers' counters being observed (weak: a router that goes away stops being reported).
_replica_stats: list[weakref.ref[Any]] = []


def observe_replica_stats(stats: Any) -> None:
    """Report ``stats`` (a ``ReplicaStats``) as ``keel.db.replica.*`` observable instruments."""
    _replica_stats[:] = [ref for ref in _replica_stats if ref() is not None and ref() is not stats]
    _replica_stats.append(weakref.ref(stats))
    metrics()  # builds the instruments on the current providers, if not yet


def live_replica_stats() -> Iterable[Any]:
    """The observed ``ReplicaStats`` still alive."""
    return [stats for stats in (ref() for ref in _replica_stats) if stats is not None]


#: (instrument, unit, description, ReplicaStats field) of the observable counters.
_REPLICA_COUNTERS = (
    ("keel.db.replica.fallbacks", "{read}", "Reads sent to the primary because no replica was healthy", "fallbacks"),
    ("keel.db.replica.waits", "{read}", "Reads that waited for a replica to replay a commit", "read_your_writes_waits"),
    (
        "keel.db.replica.wait_timeouts",
        "{read}",
        "Reads that gave up waiting for a replica and used the primary",
        "read_your_writes_timeouts",
    ),
    ("keel.db.replica.wait_time", "s", "Seconds waiting for replicas to catch up", "read_your_writes_wait_seconds"),
    ("keel.db.replica.marked_unhealthy", "{event}", "Times a replica was found down", "marked_unhealthy"),
)


def create_replica_instruments(meter: Any) -> None:
    """Create the ``keel.db.replica.*`` observable instruments on ``meter`` (read at every export)."""
    from opentelemetry.metrics import CallbackOptions, Observation

    def counter(field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(sum(getattr(stats, field) for stats in live_replica_stats()))]

        return observe

    for name, unit, description, field in _REPLICA_COUNTERS:
        meter.create_observable_counter(name, callbacks=[counter(field)], unit=unit, description=description)

    def reads(options: CallbackOptions) -> Iterable[Observation]:
        alive = live_replica_stats()
        return [
            Observation(sum(stats.replica_reads for stats in alive), {"target": "replica"}),
            Observation(sum(stats.primary_reads for stats in alive), {"target": "primary"}),
        ]

    def lag(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(seconds, {"replica": name})
            for stats in live_replica_stats()
            for name, seconds in stats.lag_seconds.items()
        ]

    meter.create_observable_counter("keel.db.replica.reads", callbacks=[reads], unit="{read}")
    meter.create_observable_gauge("keel.db.replica.lag", callbacks=[lag], unit="s")
