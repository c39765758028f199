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
from typing import Annotated

from fastapi import Depends, FastAPI, Path

from examples.allocation import views
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import MAX_REFERENCE_LENGTH, Allocate, ChangeBatchQuantity, CreateBatch
from examples.allocation.unit_of_work import AllocationUnitOfWork
from keel import MessageBus, NotFoundError
from keel.ext.fastapi import install_keel, keel_lifespan, message_bus, read_only_unit_of_work

OK = {"message": "OK"}
#: An order id in the path, as long as the column allows: a longer one is a 422, not a query.
OrderId = Annotated[str, Path(min_length=1, max_length=MAX_REFERENCE_LENGTH)]
Bus = Annotated[MessageBus, Depends(message_bus)]
ReadOnlyUnitOfWork = Annotated[AllocationUnitOfWork, Depends(read_only_unit_of_work)]


def create_app(container: AllocationContainer | None = None, *, manage_resources: bool = True) -> FastAPI:
    """An app with its own container (one per app, so tests can run several side by side).

    ``manage_resources=False`` when the caller starts and stops the
    container's resources itself (tests driving the app without a server).
    """
    container = container if container is not None else AllocationContainer()

    @asynccontextmanager
    async def caller_managed(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(title="allocation", lifespan=keel_lifespan(container) if manage_resources else caller_managed)
    install_keel(app, container)  # problem+json for every error, correlation ids, /health/live and /health/ready

    @app.post("/add_batch", status_code=201)
    async def add_batch(cmd: CreateBatch, bus: Bus) -> dict[str, str]:
        await bus.handle(cmd)
        return OK

    @app.post("/allocate", status_code=202)
    async def allocate(cmd: Allocate, bus: Bus) -> dict[str, str]:
        await bus.handle(cmd)
        return OK

    @app.post("/change_batch_quantity", status_code=202)
    async def change_batch_quantity(cmd: ChangeBatchQuantity, bus: Bus) -> dict[str, str]:
        await bus.handle(cmd)
        return OK

    @app.get("/allocations/{orderid}")
    async def allocations_view(orderid: OrderId, uow: ReadOnlyUnitOfWork) -> list[dict[str, str]]:
        # Read-only: on a replica when KEEL_DATABASE__REPLICAS names some (docs/scaling.md).
        result = await views.allocations(orderid, uow)
        if not result:
            # The id is in the problem's `instance` (the path) already: not repeated in the body.
            raise NotFoundError("no allocations for this order", entity="Order")
        return result

    return app
