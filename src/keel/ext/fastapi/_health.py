"""``/health/live`` and ``/health/ready``: liveness of the process, readiness of what it needs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from keel.ext.fastapi._problems import problem
from keel.ext.fastapi._requests import container_of


def health_router(prefix: str = "/health") -> APIRouter:
    """A router with ``GET {prefix}/live`` (200 while the process runs) and ``GET {prefix}/ready``.

    Readiness asks the container's database (connection and migrations at
    head); not ready is a 503 problem with ``Retry-After`` and each check's
    result, so a load balancer stops sending traffic until it passes.
    """
    router = APIRouter(prefix=prefix, tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", response_model=None)
    async def ready(request: Request) -> dict[str, Any] | JSONResponse:
        from keel.infrastructure.database import check_database

        result = await check_database(container_of(request).engine())
        checks = [result.to_dict()]
        if result.healthy:
            return {"status": "ok", "checks": checks}
        return problem(
            503,
            code="not_ready",
            title="Service Unavailable",
            detail=f"database: {result.detail}",
            instance=request.url.path,
            checks=checks,
        )

    return router
