"""A model with a cached repository, shared by the cache tests (tables on ``Base.metadata``)."""

from __future__ import annotations

import enum
import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import Enum, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from keel import AggregateRoot, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.cache import cached_list, cached_page
from keel.infrastructure.repository.pages import Page
from keel.orm import Base, SoftDeleteMixin, TimestampMixin, VersionMixin
from tests.contract.models import Owner
from tests.models import Animal


class Colour(enum.Enum):
    RED = "r"
    BLUE = "b"


class Gadget(Base, AggregateRoot, VersionMixin, TimestampMixin, SoftDeleteMixin):
    __tablename__ = "cache_gadgets"
    sku: Mapped[str] = mapped_column(String(32), primary_key=True)
    stock: Mapped[int]
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("1.50"))
    colour: Mapped[Colour] = mapped_column(Enum(Colour), default=Colour.RED)
    token: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    launched: Mapped[date | None] = mapped_column(default=None)


class GadgetRepository(SqlAlchemyRepository[Gadget]):
    cache_ttl = 60

    async def in_stock(self) -> list[Gadget]:
        return await cached_list(self, "in_stock", lambda: self.list(Gadget.stock > 0, order_by="sku"))

    async def page_of(self, page: int) -> Page[Gadget]:
        return await cached_page(self, f"all:{page}:2", lambda: self.paginate(page=page, size=2, order_by="sku"))


class UncachedGadgets(SqlAlchemyRepository[Gadget]):
    pass


class GadgetUnitOfWork(SqlAlchemyUnitOfWork):
    gadgets: GadgetRepository
    plain: UncachedGadgets


class ShortLivedGadgets(GadgetRepository):
    cache_ttl = 0.05  # type: ignore[assignment]  # a fraction of a second, to see expiry quickly


class ShortLivedUnitOfWork(SqlAlchemyUnitOfWork):
    gadgets: ShortLivedGadgets


class CachedAnimals(SqlAlchemyRepository[Animal]):
    cache_ttl = 60


class CachedOwners(SqlAlchemyRepository[Owner]):
    cache_ttl = 60


class ZooUnitOfWork(SqlAlchemyUnitOfWork):
    animals: CachedAnimals
    owners: CachedOwners
