"""The health registry: checks ok, failing and timing out, run concurrently, reported as JSON."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import pytest

from keel import ConcurrencyError
from keel.health import CheckFailed, HealthRegistry


async def fine() -> Mapping[str, Any]:
    return {"version": "1"}


async def broken() -> None:
    raise CheckFailed("the payments API answered 503")


async def crashes() -> None:
    raise OSError("connection reset")


async def hangs() -> None:
    await asyncio.Event().wait()


async def ignores_cancellation() -> None:
    deadline = time.perf_counter() + 3.0
    while time.perf_counter() < deadline:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue


async def test_a_registry_of_passing_checks_is_ready_and_reports_each_one() -> None:
    """Every check ok: status ready, each with its status, duration and details; JSON-serialisable."""
    registry = HealthRegistry()
    registry.register("payments", fine)
    report = await registry.check()
    assert report.ok
    data = report.to_dict()
    assert data["status"] == "ready"
    assert data["checks"]["payments"]["status"] == "ok"
    assert data["checks"]["payments"]["details"] == {"version": "1"}
    assert data["checks"]["payments"]["duration_ms"] >= 0
    assert "error" not in data["checks"]["payments"]
    json.dumps(data)


async def test_a_failing_check_makes_the_report_not_ready_with_its_error() -> None:
    """CheckFailed's message, a keel error's code and message, or another error's type and message."""

    async def conflicted() -> None:
        raise ConcurrencyError("stale")

    registry = HealthRegistry()
    registry.register("ok", fine)
    registry.register("payments", broken)
    registry.register("socket", crashes)
    registry.register("keel", conflicted)
    data = (await registry.check()).to_dict()
    assert data["status"] == "not_ready"
    checks = data["checks"]
    assert checks["ok"]["status"] == "ok"
    assert checks["payments"] == {
        "status": "failed",
        "duration_ms": checks["payments"]["duration_ms"],
        "error": "the payments API answered 503",
    }
    assert checks["socket"]["error"] == "OSError: connection reset"
    assert checks["keel"]["error"].startswith("[concurrency_conflict]")


async def test_a_hanging_check_times_out_within_its_own_timeout_while_the_others_finish() -> None:
    """Two hanging checks (one deaf to cancellation) and a fine one run at once; the report comes at ~the timeout."""
    registry = HealthRegistry(timeout=5)
    registry.register("hangs", hangs, timeout=0.2)
    registry.register("deaf", ignores_cancellation, timeout=0.2)
    registry.register("fine", fine)
    started = time.perf_counter()
    report = await registry.check()
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5, f"the report took {elapsed:.2f}s for 0.2s timeouts (the deaf check runs 3s)"
    checks = report.to_dict()["checks"]
    assert checks["hangs"]["status"] == "timed_out"
    assert checks["hangs"]["error"] == "no answer within 0.2s"
    assert checks["deaf"]["status"] == "timed_out"
    assert checks["fine"]["status"] == "ok"
    assert report.status == "not_ready"


async def test_liveness_and_readiness_run_their_own_checks() -> None:
    """A check is registered for readiness by default; liveness ones report live/not_live."""
    registry = HealthRegistry()
    registry.register("database", broken)
    registry.register("loop", fine, liveness=True, readiness=False)
    registry.register("both", fine, liveness=True)
    assert registry.names("liveness") == ["loop", "both"]
    assert registry.names("readiness") == ["database", "both"]
    live = await registry.check("liveness")
    assert live.to_dict()["status"] == "live"
    ready = await registry.check("readiness")
    assert ready.to_dict()["status"] == "not_ready"
    registry.unregister("database")
    assert (await registry.check("readiness")).status == "ready"
    registry.register("loop", broken, liveness=True, readiness=False)  # replaces the old one of that name
    assert (await registry.check("liveness")).status == "not_live"


def test_bad_registrations_are_refused() -> None:
    """No name, no kind, or a non-positive timeout: ValueError at registration, not at check time."""
    registry = HealthRegistry()
    with pytest.raises(ValueError, match="name"):
        registry.register("", fine)
    with pytest.raises(ValueError, match="neither"):
        registry.register("x", fine, readiness=False)
    with pytest.raises(ValueError, match="positive"):
        registry.register("x", fine, timeout=0)
    with pytest.raises(ValueError, match="positive"):
        HealthRegistry(timeout=-1)


async def test_a_check_cancelled_with_its_caller_is_cancelled_too() -> None:
    """Cancelling the report cancels the checks it is waiting for."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    registry = HealthRegistry(timeout=30)
    registry.register("slow", slow)
    task = asyncio.create_task(registry.check())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(cancelled.wait(), 2)
