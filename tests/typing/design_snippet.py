"""The user code from DESIGN.md, as written: it must type-check and run on main.

Run as a script (a subprocess of tests/typing/test_api.py) because it maps a
``products`` table on ``keel.orm.Base``, which the allocation example also uses.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Mapped, mapped_column

from keel import (
    AggregateRoot,
    Command,
    ConcurrencyError,
    DomainEvent,
    NotFoundError,
    SqlAlchemyRepository,
    SqlAlchemyUnitOfWork,
)
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import Base, SoftDeleteMixin, TimestampMixin, VersionMixin


class Allocated(DomainEvent):  # pydantic, frozen; event_id + occurred_at automatic
    sku: str
    qty: int


class Allocate(Command):  # pydantic: bad input -> clear validation error
    sku: str
    qty: int


class Product(Base, AggregateRoot, VersionMixin, TimestampMixin, SoftDeleteMixin):
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(primary_key=True)
    stock: Mapped[int]

    def allocate(self, qty: int) -> None:
        self.stock -= qty
        self.record(Allocated(sku=self.sku, qty=qty))


class ProductRepository(SqlAlchemyRepository[Product]):
    async def low_stock(self) -> list[Product]:
        return await self.list(Product.stock < 5)


class AppUnitOfWork(SqlAlchemyUnitOfWork):
    products: ProductRepository  # declared; built per `async with`, bound to its session


async def allocate(cmd: Allocate, uow: AppUnitOfWork) -> None:
    async with uow:  # opens session + transaction
        product = await uow.products.get(cmd.sku)  # NotFoundError if absent
        product.allocate(cmd.qty)
        await uow.commit()  # ConcurrencyError on a stale version
    # leaving without commit rolls back; events are dispatched only after commit


async def main() -> None:
    engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite:///:memory:"))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    uow = AppUnitOfWork(create_session_factory(engine))
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=6))
        await uow.commit()

    await allocate(Allocate(sku="LAMP", qty=2), uow)
    events = list(uow.collect_new_events())
    assert [(type(e).__name__, e.sku, e.qty) for e in events if isinstance(e, Allocated)] == [("Allocated", "LAMP", 2)]

    async with uow:
        low: list[Product] = await uow.products.low_stock()
        assert [p.sku for p in low] == ["LAMP"]
        assert low[0].version == 2

    try:
        await allocate(Allocate(sku="NOPE", qty=1), uow)
    except NotFoundError as exc:
        assert exc.code == "not_found"
    else:
        raise AssertionError("expected NotFoundError")

    stale_uow = AppUnitOfWork(create_session_factory(engine))
    async with stale_uow:
        stale = await stale_uow.products.get("LAMP")
    await allocate(Allocate(sku="LAMP", qty=1), uow)
    stale.stock = 100
    try:
        async with stale_uow:
            stale_uow.products.add(stale)
            await stale_uow.commit()
    except ConcurrencyError as exc:
        assert exc.version == 2
    else:
        raise AssertionError("expected ConcurrencyError")
    await engine.dispose()
    print("design snippet OK")


if __name__ == "__main__":
    asyncio.run(main())
