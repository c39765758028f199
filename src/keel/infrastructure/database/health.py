"""Liveness/readiness probe for the database."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.cross_cutting.error import KeelError
from keel.infrastructure.database.errors import translate_db_error


@dataclass(frozen=True, slots=True)
class HealthCheckResult:
    """The outcome of one component's check, ready to serialise.

    ``detail`` says why a check failed in words safe to show an operator (a
    keel error's code and message, never a driver message or a URL).
    """

    component: str
    healthy: bool
    latency_ms: float
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def check_database(engine: AsyncEngine, *, timeout: float = 2.0) -> HealthCheckResult:
    """Run ``SELECT 1`` within ``timeout`` seconds; never raises (except cancellation)."""
    started = time.perf_counter()
    extra: dict[str, Any] = {"backend": engine.dialect.name}
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except TimeoutError:
        return HealthCheckResult("database", False, _ms(started), f"no answer within {timeout}s", extra)
    except Exception as exc:  # a probe reports, it does not raise
        error = translate_db_error(exc)
        if isinstance(error, KeelError):
            return HealthCheckResult("database", False, _ms(started), str(error), {**extra, "code": error.code})
        return HealthCheckResult("database", False, _ms(started), type(exc).__name__, extra)
    return HealthCheckResult("database", True, _ms(started), extra=extra)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
