"""One declarative base per bounded context: own registry and metadata, keel's behaviours on each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, String, Table, inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from keel import ConcurrencyError, ConfigurationError, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory
from keel.orm import (
    NAMING_CONVENTION,
    Base,
    KeelBase,
    SoftDeleteMixin,
    TimestampMixin,
    UTCDateTime,
    VersionMixin,
    map_imperatively,
    version_column,
)
from keel.testing import InMemoryStore, in_memory_unit_of_work
from tests.conftest import reset_schema
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable


class CatalogBase(KeelBase):
    pass


class OrderingBase(KeelBase):
    pass


class CatalogProduct(CatalogBase, VersionMixin, TimestampMixin, SoftDeleteMixin):
    """The catalog's view of a product."""

    __tablename__ = "ctx_products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class OrderingProduct(OrderingBase, VersionMixin, TimestampMixin, SoftDeleteMixin):
    """Ordering's view of a product: same table name, its own columns and its own mapper args dict."""

    __tablename__ = "ctx_products"
    __mapper_args__ = {"eager_defaults": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("1.00"))


class CatalogOnly(CatalogBase):
    __tablename__ = "ctx_catalog_only"
    id: Mapped[int] = mapped_column(primary_key=True)


class Shipment:
    """A pure domain class, mapped imperatively onto ordering's registry."""

    def __init__(self, id: int, name: str) -> None:
        self.id = id
        self.name = name
        self.version: int | None = None


shipments = Table(
    "ctx_shipments",
    OrderingBase.metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    version_column(),
)
map_imperatively(Shipment, shipments, registry_=OrderingBase.registry)


class CatalogUnitOfWork(SqlAlchemyUnitOfWork):
    products: SqlAlchemyRepository[CatalogProduct]


class OrderingUnitOfWork(SqlAlchemyUnitOfWork):
    products: SqlAlchemyRepository[OrderingProduct]
    shipments: SqlAlchemyRepository[Shipment]


CONTEXTS: dict[str, tuple[type[Any], type[SqlAlchemyUnitOfWork], MetaData]] = {
    "catalog": (CatalogProduct, CatalogUnitOfWork, CatalogBase.metadata),
    "ordering": (OrderingProduct, OrderingUnitOfWork, OrderingBase.metadata),
}


def test_each_base_has_its_own_registry_and_metadata() -> None:
    """Two context bases, Base and KeelBase share no registry or MetaData; each keeps keel's naming convention."""
    bases = [KeelBase, Base, CatalogBase, OrderingBase]
    assert len({id(b.registry) for b in bases}) == len({id(b.metadata) for b in bases}) == len(bases)
    for base in bases:
        assert base.metadata is base.registry.metadata
        assert dict(base.metadata.naming_convention) == {**base.metadata.naming_convention, **NAMING_CONVENTION}
    assert CatalogBase.metadata.tables["ctx_products"] is CatalogProduct.__table__
    assert OrderingBase.metadata.tables["ctx_products"] is OrderingProduct.__table__
    assert "ctx_products" not in Base.metadata.tables
    assert not KeelBase.metadata.tables
    assert not list(KeelBase.registry.mappers)
    assert {m.class_ for m in OrderingBase.registry.mappers} == {OrderingProduct, Shipment}


def test_models_of_every_base_get_utc_datetimes_and_the_version_column() -> None:
    """Versioning is mapped on both bases (merged into an own mapper args dict); datetimes map to UTCDateTime."""
    models: tuple[type[Any], ...] = (CatalogProduct, OrderingProduct)
    for model in models:
        assert inspect(model).version_id_col is model.__table__.c.version
        assert isinstance(model.__table__.c.created_at.type, UTCDateTime)
    assert inspect(OrderingProduct).eager_defaults is True
    assert inspect(Shipment).version_id_col is shipments.c.version


def test_a_base_may_bring_its_own_metadata_and_type_map_merged_over_keels() -> None:
    """A base's own MetaData is used as is, and its type map adds to keel's datetime mapping."""
    own = MetaData(naming_convention={"pk": "pk_own_%(table_name)s"})

    class ReportingBase(KeelBase):
        metadata = own
        type_annotation_map = {str: String(40)}

    class Row(ReportingBase):
        __tablename__ = "ctx_rows"
        id: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str]
        seen_at: Mapped[datetime]

    assert ReportingBase.metadata is own is ReportingBase.registry.metadata
    assert own.tables["ctx_rows"] is Row.__table__
    assert isinstance(Row.__table__.c.label.type, String)
    assert Row.__table__.c.label.type.length == 40
    assert isinstance(Row.__table__.c.seen_at.type, UTCDateTime)


def test_mapping_a_model_directly_on_keel_base_is_refused() -> None:
    """KeelBase is the template of a base: a table declared on it is a ConfigurationError naming the class."""
    with pytest.raises(ConfigurationError, match="Stray subclasses KeelBase directly"):

        class Stray(KeelBase):
            __tablename__ = "ctx_stray"
            id: Mapped[int] = mapped_column(primary_key=True)


def test_a_base_metadata_that_is_not_a_metadata_is_refused() -> None:
    """A base whose ``metadata`` is not a MetaData gets a ConfigurationError, not an attribute error later."""
    with pytest.raises(ConfigurationError, match=r"Odd\.metadata must be a sqlalchemy MetaData"):

        class Odd(KeelBase):
            metadata = "not metadata"  # type: ignore[assignment]  # the mistake under test


@pytest.fixture(scope="module")
def second_postgres_url() -> Iterator[str]:
    """A second PostgreSQL database, so the two contexts' same-named tables live apart."""
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    yield url
    drop_postgres_database(name)


SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    """The in-memory twin, SQLite or PostgreSQL."""
    return str(request.param)


@pytest.fixture
def context_urls(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """A database per context (created outside the event loop, as ``postgres_url`` is); none on the twin."""
    if backend == "memory":
        return {}
    if backend == "postgresql":
        return {
            "catalog": str(request.getfixturevalue("postgres_url")),
            "ordering": str(request.getfixturevalue("second_postgres_url")),
        }
    return {context: f"sqlite+aiosqlite:///{tmp_path / context}.db" for context in CONTEXTS}


@pytest.fixture
async def context_engines(context_urls: dict[str, str]) -> AsyncIterator[dict[str, AsyncEngine]]:
    """An engine per context, its database holding only that context's tables (empty)."""
    engines = {context: create_engine(DatabaseSettings(url=url)) for context, url in context_urls.items()}
    for context, engine in engines.items():
        await reset_schema(engine, CONTEXTS[context][2])
    yield engines
    for engine in engines.values():
        await engine.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
async def test_create_all_of_a_context_creates_only_that_contexts_tables(
    context_engines: dict[str, AsyncEngine],
) -> None:
    """Each base's metadata.create_all makes its own tables, the shared table name with its own columns."""
    catalog, ordering = await table_names(context_engines["catalog"]), await table_names(context_engines["ordering"])
    assert {"ctx_products", "ctx_catalog_only"} <= catalog
    assert "ctx_shipments" not in catalog
    assert {"ctx_products", "ctx_shipments"} <= ordering
    assert "ctx_catalog_only" not in ordering
    async with context_engines["ordering"].connect() as conn:
        columns = await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("ctx_products")})
    assert "price" in columns


@pytest.fixture
def new_uow(backend: str, context_engines: dict[str, AsyncEngine]) -> Callable[[str], SqlAlchemyUnitOfWork]:
    """Fresh units of work of a context: on its database, or on the in-memory twin of its unit of work."""
    if backend == "memory":
        stores = {context: InMemoryStore() for context in CONTEXTS}
        twins = {context: in_memory_unit_of_work(uow) for context, (_, uow, _) in CONTEXTS.items()}
        return lambda context: twins[context](stores[context])  # a subclass of the SQL class
    factories = {context: create_session_factory(engine) for context, engine in context_engines.items()}
    return lambda context: CONTEXTS[context][1](factories[context])


@pytest.mark.parametrize("context", CONTEXTS)
async def test_versioning_timestamps_and_soft_delete_work_on_the_models_of_each_base(
    new_uow: Callable[[str], Any], context: str
) -> None:
    """Either context's model gets version 1 then 2, aware UTC timestamps, soft delete, and lost-update detection."""
    model = CONTEXTS[context][0]
    uow = new_uow(context)
    async with uow:
        uow.products.add(model(id=1, name="first"))
        await uow.commit()
    async with uow:
        product = await uow.products.get(1)
        assert product.version == 1
        assert product.created_at.tzinfo is UTC
        stale = product
    async with uow:
        (await uow.products.get(1)).name = "second"
        await uow.commit()
    async with uow:
        assert (await uow.products.get(1)).version == 2
    stale.name = "lost"
    async with uow:
        uow.products.add(stale)
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with uow:
        await uow.products.delete(await uow.products.get(1))
        await uow.commit()
    async with uow:
        assert await uow.products.get_or_none(1) is None
        hidden = await uow.products.get(1, include_deleted=True)
        assert hidden.deleted_at is not None
        assert hidden.deleted_at.tzinfo is UTC


async def test_a_context_keeps_its_rows_apart_from_the_other_contexts_same_named_table(
    new_uow: Callable[[str], Any],
) -> None:
    """Writing ``ctx_products`` in one context leaves the other's empty; each unit of work sees only its own."""
    catalog, ordering = new_uow("catalog"), new_uow("ordering")
    async with catalog:
        catalog.products.add(CatalogProduct(id=1, name="catalog"))
        await catalog.commit()
    async with ordering:
        assert await ordering.products.count() == 0
        ordering.products.add(OrderingProduct(id=1, name="ordering"))
        ordering.shipments.add(Shipment(id=7, name="box"))
        await ordering.commit()
    async with ordering:
        product = await ordering.products.get(1)
        assert (product.name, product.price) == ("ordering", Decimal("1.00"))
        assert (await ordering.shipments.get(7)).version == 1
    async with catalog:
        assert [p.name for p in await catalog.products.list()] == ["catalog"]


def test_a_model_on_a_context_base_that_drops_the_version_column_is_refused() -> None:
    """A callable __mapper_args__ without version_id_col fails at configuration on a context base too."""

    class BrokenBase(KeelBase):
        """Its own registry, so the broken mapper stays out of every other base."""

    class Ticket(BrokenBase, VersionMixin):
        __tablename__ = "ctx_tickets"
        id: Mapped[int] = mapped_column(primary_key=True)

        @declared_attr.directive
        def __mapper_args__(cls) -> dict[str, Any]:
            return {"eager_defaults": True}

    try:
        with pytest.raises(ConfigurationError, match="Ticket"):
            BrokenBase.registry.configure()
    finally:
        BrokenBase.registry.dispose()


def test_an_abstract_model_class_on_a_context_base_passes_its_columns_to_its_models() -> None:
    """``__abstract__`` below a context base works as in SQLAlchemy: no table, models keep the base's metadata."""

    class AuditBase(KeelBase):
        pass

    class Entry(AuditBase, VersionMixin):
        __abstract__ = True
        note: Mapped[str] = mapped_column(String(50), default="")

    class Login(Entry):
        __tablename__ = "ctx_logins"
        __mapper_args__ = {"eager_defaults": True}
        id: Mapped[int] = mapped_column(primary_key=True)

    assert set(AuditBase.metadata.tables) == {"ctx_logins"}
    assert {"note", "version"} <= set(Login.__table__.c.keys())
    assert inspect(Login).version_id_col is Login.__table__.c.version
