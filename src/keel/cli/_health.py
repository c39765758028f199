"""``keel health [--live|--ready]``: run the checks, print the JSON report, exit 1 when not ready."""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from keel.health import HealthReport


@click.command(name="health")
@click.option("--live", "kind", flag_value="liveness", help="Liveness: is the process itself working?")
@click.option("--ready", "kind", flag_value="readiness", default=True, help="Readiness: can it serve? (the default)")
@click.option(
    "--checks",
    "extend",
    metavar="MODULE:FUNCTION",
    help="Also run your checks: FUNCTION(registry) registers them on keel's registry.",
)
@click.option("--alembic-config", type=click.Path(dir_okay=False), help="Readiness also needs every migration head.")
def health(kind: str, extend: str | None, alembic_config: str | None) -> None:
    """Check the database, Redis, Pub/Sub and the outbox backlog (as configured by KEEL_*); print JSON."""
    report = asyncio.run(_check(kind, extend, alembic_config))
    click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=False))
    if not report.ok:
        raise click.exceptions.Exit(1)


async def _check(kind: Any, extend: str | None, alembic_config: str | None) -> HealthReport:
    from keel.config import KeelSettings
    from keel.health import default_health_registry
    from keel.infrastructure.database import create_engine

    settings = KeelSettings()
    engine = create_engine(settings)
    try:
        registry = default_health_registry(settings, engine, alembic_config=alembic_config)
        if extend:
            _load(extend)(registry)
        return await registry.check(kind)
    finally:
        await engine.dispose()


def _load(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(f"expected MODULE:FUNCTION, not {spec!r}", param_hint="--checks")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="--checks") from exc
