"""The baseline of ``benchmarks.api_throughput``: the allocation API hand-written on FastAPI + SQLAlchemy.

What an experienced developer writes without a framework, on the same
tables as ``examples/allocation`` (``examples.allocation.orm``'s ``Table``
objects, SQLAlchemy Core through an ``AsyncSession``): ``POST /allocate``
locks the product row (``SELECT ... FOR UPDATE``), sums each batch's
allocations in SQL, and inserts the order line, the allocation and the
read-model row and bumps the product's version in one transaction;
``GET /allocations/{orderid}`` reads the read model. No message bus, no
audit, no processed-commands record, no outbox, no domain model: that is
the difference the benchmark's ratio measures.

    uvicorn benchmarks._handwritten_allocation:create_app --factory
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from examples.allocation.orm import allocations, allocations_view, batches, order_lines, products
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

OK = {"message": "OK"}


class NewBatch(BaseModel):
    ref: str
    sku: str
    qty: int
    eta: date | None = None


class NewAllocation(BaseModel):
    orderid: str
    sku: str
    qty: int


def transaction(request: Request) -> AbstractAsyncContextManager[AsyncSession]:
    """A session in a transaction, committed (before the response) when the block ends."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions.begin()


def _first_batch_with_room(sku: str, qty: int) -> Select[Any]:
    """The batch an order line goes to: room for ``qty``, in the warehouse (no eta) first, then the earliest."""
    used = func.coalesce(func.sum(order_lines.c.qty), 0)
    return (
        select(batches.c.id, batches.c.reference)
        .select_from(batches.outerjoin(allocations).outerjoin(order_lines))
        .where(batches.c.sku == sku)
        .group_by(batches.c.id)
        .having(batches.c.purchased_quantity - used >= qty)
        .order_by(batches.c.eta.asc().nulls_first(), batches.c.id)
        .limit(1)
    )


def create_app() -> FastAPI:
    """The app, on ``KEEL_DATABASE__URL`` with the pool sizes of ``KEEL_DATABASE__*`` (as the keel side)."""
    pool_size = int(os.environ.get("KEEL_DATABASE__POOL_SIZE", "10"))
    engine = create_async_engine(
        os.environ["KEEL_DATABASE__URL"],
        pool_size=pool_size,
        max_overflow=int(os.environ.get("KEEL_DATABASE__MAX_CONNECTIONS", "20")) - pool_size,
        pool_pre_ping=True,  # as keel's default
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="allocation, hand-written", lifespan=lifespan)
    app.state.sessions = sessions

    @app.post("/add_batch", status_code=201)
    async def add_batch(body: NewBatch, request: Request) -> dict[str, str]:
        now = datetime.now(UTC)
        async with transaction(request) as s:
            await s.execute(
                pg_insert(products)
                .values(sku=body.sku, version=1, created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=[products.c.sku])
            )
            batch = {"reference": body.ref, "sku": body.sku, "purchased_quantity": body.qty, "eta": body.eta}
            await s.execute(insert(batches).values(**batch, created_at=now, updated_at=now))
        return OK

    @app.post("/allocate", status_code=202, response_model=None)
    async def allocate(body: NewAllocation, request: Request) -> dict[str, str] | JSONResponse:
        async with transaction(request) as s:
            locked = select(products.c.version).where(products.c.sku == body.sku).with_for_update()
            if (await s.execute(locked)).scalar_one_or_none() is None:
                return JSONResponse({"message": f"Invalid sku {body.sku}"}, status_code=400)
            batch = (await s.execute(_first_batch_with_room(body.sku, body.qty))).first()
            if batch is None:
                return OK  # out of stock: accepted, nothing allocated
            line = insert(order_lines).values(orderid=body.orderid, sku=body.sku, qty=body.qty)
            line_id = (await s.execute(line.returning(order_lines.c.id))).scalar_one()
            await s.execute(insert(allocations).values(orderline_id=line_id, batch_id=batch.id))
            bump = {"version": products.c.version + 1, "updated_at": datetime.now(UTC)}
            await s.execute(update(products).where(products.c.sku == body.sku).values(**bump))
            row = {"orderid": body.orderid, "sku": body.sku, "batchref": batch.reference}
            await s.execute(insert(allocations_view).values(**row))
        return OK

    @app.get("/allocations/{orderid}", response_model=None)
    async def allocations_of(orderid: str, request: Request) -> list[dict[str, str]] | JSONResponse:
        query = (
            select(allocations_view.c.sku, allocations_view.c.batchref)
            .where(allocations_view.c.orderid == orderid)
            .order_by(allocations_view.c.sku)
        )
        async with transaction(request) as s:
            rows = (await s.execute(query)).all()
        if not rows:
            return JSONResponse({"message": "not found"}, status_code=404)
        return [{"sku": row.sku, "batchref": row.batchref} for row in rows]

    return app
