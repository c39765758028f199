"""The HTTP entry point: Cosmic Python's allocation API on FastAPI.

``POST /add_batch`` (201), ``POST /allocate`` (202; 400 ``Invalid sku``),
``GET /allocations/{orderid}`` (200, or 404 when nothing is allocated), plus
``POST /change_batch_quantity`` (202) and the ``/health/live`` and
``/health/ready`` probes. Run it with
``uvicorn examples.allocation.api:create_app --factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request

from examples.allocation import views
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import MAX_REFERENCE_LENGTH, Allocate, ChangeBatchQuantity, CreateBatch
from examples.allocation.problems import install_problem_handlers, problem
from keel import MessageBus, NotFoundError
from keel.container import running
from keel.infrastructure.database import check_database

OK = {"message": "OK"}
#: An order id in the path, as long as the column allows: a longer one is a 422, not a query.
OrderId = Annotated[str, Path(min_length=1, max_length=MAX_REFERENCE_LENGTH)]


def create_app(container: AllocationContainer | None = None, *, manage_resources: bool = True) -> FastAPI:
    """An app with its own container (one per app, so tests can run several side by side).

    ``manage_resources=False`` when the caller starts and stops the
    container's resources itself (tests driving the app without a server).
    """
    container = container if container is not None else AllocationContainer()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not manage_resources:
            yield
            return
        async with running(container):
            container.bus()  # build it now: a wiring error stops start-up, not the first request
            yield

    app = FastAPI(title="allocation", lifespan=lifespan)
    app.state.container = container
    install_problem_handlers(app)

    def bus() -> MessageBus:
        result: MessageBus = container.bus()
        return result

    @app.post("/add_batch", status_code=201)
    async def add_batch(cmd: CreateBatch) -> dict[str, str]:
        await bus().handle(cmd)
        return OK

    @app.post("/allocate", status_code=202)
    async def allocate(cmd: Allocate) -> dict[str, str]:
        await bus().handle(cmd)
        return OK

    @app.post("/change_batch_quantity", status_code=202)
    async def change_batch_quantity(cmd: ChangeBatchQuantity) -> dict[str, str]:
        await bus().handle(cmd)
        return OK

    @app.get("/allocations/{orderid}")
    async def allocations_view(orderid: OrderId) -> list[dict[str, str]]:
        # Read-only: on a replica when KEEL_DATABASE__REPLICAS names some (docs/scaling.md).
        result = await views.allocations(orderid, container.read_only_unit_of_work())
        if not result:
            # The id is in the problem's `instance` (the path) already: not repeated in the body.
            raise NotFoundError("no allocations for this order", entity="Order")
        return result

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready(request: Request) -> Any:
        result = await check_database(container.engine())
        body = {"status": "ok" if result.healthy else "unavailable", "checks": [result.to_dict()]}
        if result.healthy:
            return body
        return problem(
            503,
            code="not_ready",
            title="Service Unavailable",
            detail=f"database: {result.detail}",
            instance=request.url.path,
            checks=body["checks"],
        )

    return app
