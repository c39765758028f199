"""``/health/live`` and ``/health/ready``: liveness of the process, readiness of what it needs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from keel.ext.fastapi._problems import problem
from keel.ext.fastapi._requests import container_of
from keel.health import HealthRegistry, HealthReport, default_health_registry


def health_router(prefix: str = "/health", registry: HealthRegistry | None = None) -> APIRouter:
    """A router with ``GET {prefix}/live`` and ``GET {prefix}/ready``, answering :mod:`keel.health` reports.

    The checks are ``registry``'s, or by default the container's
    (:func:`keel.health.default_health_registry` over its settings and
    engine: the database, and the outbox, Redis and Pub/Sub as configured).
    Not ready is a 503 problem with ``Retry-After`` and each check's result,
    so a load balancer stops sending traffic until it passes.
    """
    router = APIRouter(prefix=prefix, tags=["health"])

    def registry_for(request: Request, *, engine: bool) -> HealthRegistry:
        if registry is not None:
            return registry
        container = container_of(request)
        return default_health_registry(container.settings(), container.engine() if engine else None)

    @router.get("/live", response_model=None)
    async def live(request: Request) -> dict[str, Any] | JSONResponse:
        report = await registry_for(request, engine=False).check("liveness")
        return report.to_dict() if report.ok else _not_ok(request, report)

    @router.get("/ready", response_model=None)
    async def ready(request: Request) -> dict[str, Any] | JSONResponse:
        report = await registry_for(request, engine=True).check("readiness")
        return report.to_dict() if report.ok else _not_ok(request, report)

    return router


def _not_ok(request: Request, report: HealthReport) -> JSONResponse:
    body = report.to_dict()
    failed = "; ".join(f"{result.name}: {result.error}" for result in report.results if not result.ok)
    return problem(
        503,
        code="not_ready",
        title="Service Unavailable",
        detail=failed,
        instance=request.url.path,
        checks=body["checks"],
    )
