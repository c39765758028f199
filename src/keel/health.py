"""``keel.health``: liveness and readiness checks per component, each under its own timeout, as JSON.

.. code-block:: python

    registry = default_health_registry(settings, engine)      # database, outbox, Redis, Pub/Sub as configured
    registry.register("payments_api", ping_payments)           # your own: raise to fail
    report = await registry.check("readiness")
    report.to_dict()   # {"status": "ready", "checks": {"database": {"status": "ok", "duration_ms": 1.2}, ...}}

``keel health [--live|--ready]`` prints the same JSON and exits non-zero
when not ready. See ``docs/health.md``.
"""

from __future__ import annotations

from keel.infrastructure.health._checks import (
    OUTBOX_TABLE,
    database_check,
    default_health_registry,
    outbox_backlog_check,
    pubsub_check,
    redis_check,
)
from keel.infrastructure.health._registry import Check, CheckFailed, CheckResult, HealthRegistry, HealthReport

__all__ = [
    "OUTBOX_TABLE",
    "Check",
    "CheckFailed",
    "CheckResult",
    "HealthRegistry",
    "HealthReport",
    "database_check",
    "default_health_registry",
    "outbox_backlog_check",
    "pubsub_check",
    "redis_check",
]
