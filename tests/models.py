"""Models shared by the tests: a declarative aggregate and an imperatively mapped one."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from keel import AggregateRoot, DomainEvent, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import (
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
    map_imperatively,
    soft_delete_column,
    timestamp_columns,
    version_column,
)


class Allocated(DomainEvent):
    sku: str
    qty: int


class Product(Base, AggregateRoot, VersionMixin, TimestampMixin, SoftDeleteMixin):
    __tablename__ = "core_products"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    stock: Mapped[int]

    def allocate(self, qty: int) -> None:
        self.stock -= qty
        self.record(Allocated(sku=self.sku, qty=qty))


class Counter(Base, AggregateRoot, VersionMixin, TimestampMixin):
    __tablename__ = "core_counters"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class Animal(Base, VersionMixin):
    """Joined-table inheritance: the version lives on the base table."""

    __tablename__ = "core_animals"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}


class Dog(Animal):
    __tablename__ = "core_dogs"
    id: Mapped[int] = mapped_column(ForeignKey("core_animals.id"), primary_key=True)
    bark: Mapped[str] = mapped_column(String(16), default="woof")
    __mapper_args__ = {"polymorphic_identity": "dog"}


class ProductRepository(SqlAlchemyRepository[Product]):
    async def low_stock(self) -> list[Product]:
        return await self.list(Product.stock < 5)


# A pure domain class: no SQLAlchemy in its definition (Cosmic Python's classical mapping).
class Account(AggregateRoot):
    def __init__(self, ref: str, balance: int) -> None:
        self.ref = ref
        self.balance = balance

    def deposit(self, amount: int) -> None:
        self.balance += amount


accounts = Table(
    "core_accounts",
    Base.metadata,
    Column("ref", String(64), primary_key=True),
    Column("balance", Integer, nullable=False),
    version_column(),
    *timestamp_columns(),
    soft_delete_column(),
)
map_imperatively(Account, accounts)


class AccountRepository(SqlAlchemyRepository[Account]):
    pass


class AppUnitOfWork(SqlAlchemyUnitOfWork):
    products: ProductRepository
    counters: SqlAlchemyRepository[Counter]
    accounts: AccountRepository
