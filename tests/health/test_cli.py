"""`keel health`: the JSON report on stdout, exit 0 when ready (or live), 1 when not."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from keel.cli import cli
from keel.health import HealthRegistry


def extra_checks(registry: HealthRegistry) -> None:
    """Used by --checks: one more readiness check that always fails."""

    async def payments() -> None:
        raise RuntimeError("payments API down")

    registry.register("payments", payments)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    return {"KEEL_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"}


def test_a_ready_service_prints_ready_json_and_exits_zero(env: dict[str, str]) -> None:
    """Database reachable, nothing else configured: status ready, exit 0."""
    result = CliRunner().invoke(cli, ["health"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "ready"
    assert set(report["checks"]) == {"database", "outbox"}
    assert report["checks"]["database"]["status"] == "ok"


def test_redis_on_a_closed_port_makes_it_not_ready_with_exit_one(env: dict[str, str]) -> None:
    """KEEL_HEALTH__REDIS_URL pointing nowhere: not_ready, the redis check failed, exit 1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        cli, ["health", "--ready"], env={**env, "KEEL_HEALTH__REDIS_URL": f"redis://127.0.0.1:{port}"}
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["status"] == "not_ready"
    assert report["checks"]["redis"]["status"] == "failed"
    assert report["checks"]["database"]["status"] == "ok"


def test_liveness_runs_only_the_liveness_checks(env: dict[str, str]) -> None:
    """--live: the event loop check, status live, exit 0 even with a database URL that cannot work."""
    result = CliRunner().invoke(
        cli, ["health", "--live"], env={**env, "KEEL_DATABASE__URL": "postgresql+asyncpg://u@127.0.0.1:1/x"}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "status": "live",
        "checks": {"event_loop": json.loads(result.output)["checks"]["event_loop"]},
    }


def test_user_checks_join_through_the_checks_option(env: dict[str, str]) -> None:
    """--checks MODULE:FUNCTION registers the application's checks; a bad spec is a usage error (exit 2)."""
    result = CliRunner().invoke(cli, ["health", "--checks", f"{__name__}:extra_checks"], env=env)
    assert result.exit_code == 1
    assert json.loads(result.output)["checks"]["payments"]["error"] == "RuntimeError: payments API down"
    bad = CliRunner().invoke(cli, ["health", "--checks", "nowhere"], env=env)
    assert bad.exit_code == 2
    missing = CliRunner().invoke(cli, ["health", "--checks", f"{__name__}:nope"], env=env)
    assert missing.exit_code == 2
    assert "cannot load" in missing.output
