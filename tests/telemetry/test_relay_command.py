"""``keel outbox relay`` under KEEL_TELEMETRY__ENABLED: the relay process exports its spans, in the writer's trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from keel.cli import cli
from keel.config import DatabaseSettings, TelemetrySettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, keel_metadata
from keel.outbox import OutboxWriter
from keel.telemetry import Telemetry, configure_telemetry, span
from tests.integration.outbox.conftest import ROUTES, allocate, seed
from tests.models import AppUnitOfWork
from tests.telemetry.conftest import Recorded


def write_in_a_trace(url: str) -> str:
    """Commit one routed event inside a span; the trace id, as hex."""

    async def run() -> str:
        engine = create_engine(DatabaseSettings(url=url))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
                await conn.run_sync(keel_metadata.create_all)
            factory = create_session_factory(engine)
            writer = OutboxWriter(ROUTES)
            await seed(lambda: AppUnitOfWork(factory, participants=[writer]), "LAMP")
            with span("request") as request:
                assert request is not None
                await allocate(lambda: AppUnitOfWork(factory, participants=[writer]), "LAMP")
            return format(request.get_span_context().trace_id, "032x")
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_relay_command_configures_telemetry_and_records_its_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    """With telemetry on, `relay --once` configures it from settings: its batch span and SQL spans are recorded."""
    import keel.telemetry

    url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    write_in_a_trace(url)
    recorded.exporter.clear()
    configured: list[object] = []

    def configure(settings: object) -> Telemetry:
        configured.append(settings)  # the test's in-memory providers stand in for the ones settings would build
        return configure_telemetry(TelemetrySettings(), recorded.tracer_provider)

    monkeypatch.setattr(keel.telemetry, "configure_telemetry", configure)
    monkeypatch.setenv("KEEL_DATABASE__URL", url)
    monkeypatch.setenv("KEEL_TELEMETRY__ENABLED", "true")
    result = CliRunner().invoke(cli, ["outbox", "relay", "--once"])
    assert result.exit_code == 0, result.output
    assert "published 1" in result.output
    assert len(configured) == 1
    batch = recorded.one("keel.outbox.relay_batch")
    statements = [s for s in recorded.spans() if s.parent is not None and s.parent.span_id == batch.context.span_id]
    assert {s.name.split()[0] for s in statements} >= {"SELECT", "UPDATE"}
