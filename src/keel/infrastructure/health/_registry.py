"""``HealthRegistry``: named checks, each under its own timeout, run concurrently, reported as JSON.

A check is an async callable with no arguments. It passes by returning
(``None``, or a dict of details to show), and fails by raising: the error's
message is what the report shows, so raise :class:`CheckFailed` with words
safe for an operator. A check that has not finished within its timeout is
reported as timed out at once, and cancelled; one that ignores the
cancellation is left to finish in the background, never waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.cross_cutting.error import KeelError

#: What a check is: passes by returning (optionally details), fails by raising.
Check = Callable[[], Awaitable[Mapping[str, Any] | None]]

Kind = Literal["liveness", "readiness"]

#: Checks given up on, kept referenced until they end (a task nobody references may vanish mid-run).
_abandoned: set[asyncio.Task[Any]] = set()


class CheckFailed(Exception):
    """Raised by a check that failed; its message goes into the report as it is."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: ``ok``, ``failed`` or ``timed_out``."""

    name: str
    status: Literal["ok", "failed", "timed_out"]
    duration_ms: float
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "duration_ms": self.duration_ms}
        if self.error is not None:
            data["error"] = self.error
        if self.details:
            data["details"] = dict(self.details)
        return data


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every check of one kind; ready (or live) when each one is ok."""

    kind: Kind
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def status(self) -> str:
        """``ready``/``not_ready`` for readiness, ``live``/``not_live`` for liveness."""
        word = "ready" if self.kind == "readiness" else "live"
        return word if self.ok else f"not_{word}"

    def to_dict(self) -> dict[str, Any]:
        """``{"status": ..., "checks": {name: {"status", "duration_ms", "error"?, "details"?}}}``."""
        return {"status": self.status, "checks": {result.name: result.to_dict() for result in self.results}}


@dataclass(frozen=True, slots=True)
class _Registered:
    check: Check
    timeout: float
    kinds: frozenset[Kind]


class HealthRegistry:
    """Named checks for liveness and readiness.

    .. code-block:: python

        registry = HealthRegistry(timeout=2.0)
        registry.register("payments_api", ping_payments)                # readiness
        registry.register("worker_loop", worker_heartbeat, liveness=True, readiness=False)
        report = await registry.check("readiness")
        report.to_dict()    # {"status": "ready", "checks": {"payments_api": {...}}}
    """

    def __init__(self, *, timeout: float = 2.0) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self._checks: dict[str, _Registered] = {}

    def register(
        self,
        name: str,
        check: Check,
        *,
        liveness: bool = False,
        readiness: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Add ``check`` under ``name`` (replacing one of that name), for readiness, liveness or both."""
        if not name:
            raise ValueError("a check needs a name")
        kinds: set[Kind] = set()
        if liveness:
            kinds.add("liveness")
        if readiness:
            kinds.add("readiness")
        if not kinds:
            raise ValueError(f"check {name!r} is for neither liveness nor readiness")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self._checks[name] = _Registered(check, timeout or self.timeout, frozenset(kinds))

    def unregister(self, name: str) -> None:
        """Remove the check named ``name`` (absent: nothing happens)."""
        self._checks.pop(name, None)

    def names(self, kind: Kind = "readiness") -> list[str]:
        """The names of the checks of ``kind``, in registration order."""
        return [name for name, registered in self._checks.items() if kind in registered.kinds]

    async def check(self, kind: Kind = "readiness") -> HealthReport:
        """Run every check of ``kind`` concurrently; the slowest bounds the wait by its own timeout."""
        chosen = [(name, registered) for name, registered in self._checks.items() if kind in registered.kinds]
        results = await asyncio.gather(*(_run(name, registered) for name, registered in chosen))
        return HealthReport(kind, tuple(results))


async def _run(name: str, registered: _Registered) -> CheckResult:
    started = time.perf_counter()
    task = asyncio.ensure_future(registered.check())
    try:
        done, _ = await asyncio.wait({task}, timeout=registered.timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_forget)
        return CheckResult(name, "timed_out", _ms(started), f"no answer within {registered.timeout:g}s")
    try:
        details = task.result()
    except Exception as exc:  # noqa: BLE001 -- a check reports its failure, it does not raise
        return CheckResult(name, "failed", _ms(started), describe(exc))
    return CheckResult(name, "ok", _ms(started), details=dict(details or {}))


def describe(exc: BaseException) -> str:
    """Words for the report: a keel error's ``str`` (code and message), else the error's type and message."""
    if isinstance(exc, KeelError | CheckFailed):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
