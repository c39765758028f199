"""Liveness/readiness probe for the database."""

from __future__ import annotations

import asyncio
import importlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.cross_cutting.error import KeelError
from keel.infrastructure.database._translate import translate_db_error

if TYPE_CHECKING:
    from alembic.config import Config

    from keel.infrastructure.database.migrations import MigrationState


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


#: Probes given up on, kept referenced until their clean-up has finished.
_abandoned: set[asyncio.Task[Any]] = set()


async def check_database(
    engine: AsyncEngine, *, timeout: float = 2.0, alembic_config: Config | str | Path | None = None
) -> HealthCheckResult:
    """Run ``SELECT 1`` within ``timeout`` seconds; never raises (except cancellation).

    The timeout covers everything, pool checkout and connecting included: a
    probe that has not answered in time is reported at once and left to
    clean up in the background (closing a connection to a frozen server can
    itself take seconds). With ``alembic_config`` (the application's
    ``alembic.ini`` or a :class:`~alembic.config.Config`), the database is
    also only ready when it is at every head, the application's and keel's.
    """
    started = time.perf_counter()
    extra: dict[str, Any] = {"backend": engine.dialect.name}
    probe = asyncio.ensure_future(_probe(engine, alembic_config))
    try:
        done, _ = await asyncio.wait({probe}, timeout=timeout)
    except asyncio.CancelledError:
        probe.cancel()
        raise
    if not done:
        probe.cancel()
        _abandoned.add(probe)
        probe.add_done_callback(_forget)
        return HealthCheckResult("database", False, _ms(started), f"no answer within {timeout}s", extra)
    try:
        state = probe.result()
    except Exception as exc:  # noqa: BLE001 -- a probe reports, it does not raise
        error = translate_db_error(exc)
        if isinstance(error, KeelError):
            return HealthCheckResult("database", False, _ms(started), str(error), {**extra, "code": error.code})
        return HealthCheckResult("database", False, _ms(started), type(exc).__name__, extra)
    if state is not None and not state.at_head:
        extra |= {"missing_heads": sorted(state.missing), "unexpected_revisions": sorted(state.unexpected)}
        return HealthCheckResult("database", False, _ms(started), state.describe(), extra)
    return HealthCheckResult("database", True, _ms(started), extra=extra)


async def _probe(engine: AsyncEngine, alembic_config: Config | str | Path | None) -> MigrationState | None:
    if alembic_config is None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    # Alembic is only needed for the head check, and importing it takes a few
    # hundred milliseconds: done on the event loop, that stalled every task
    # and made the first probe of a process overrun its timeout.
    migrations = await asyncio.to_thread(importlib.import_module, "keel.infrastructure.database.migrations")
    expected = await asyncio.to_thread(migrations.expected_heads, alembic_config)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        state: MigrationState = await conn.run_sync(migrations.migration_state, expected)
        return state


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
