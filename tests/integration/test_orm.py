"""ORM helpers: version columns survive custom mapper args, timestamps are aware UTC everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import String, Table, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from keel import ConcurrencyError, ConfigurationError, SqlAlchemyRepository, SqlAlchemyUnitOfWork, ValidationError
from keel.orm import NAMING_CONVENTION, Base, TimestampMixin, VersionMixin
from tests.models import AppUnitOfWork, Product


class Note(Base, VersionMixin, TimestampMixin):
    """Declares its own ``__mapper_args__`` dict: keel must merge the version column in."""

    __tablename__ = "core_notes"
    __mapper_args__ = {"eager_defaults": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200))


class NoteUnitOfWork(SqlAlchemyUnitOfWork):
    notes: SqlAlchemyRepository[Note]


def test_own_mapper_args_dict_keeps_the_version_column() -> None:
    """A model's own __mapper_args__ dict is kept and version_id_col is merged into it."""
    mapper = inspect(Note)
    assert mapper.version_id_col is Note.__table__.c.version
    assert mapper.eager_defaults is True


async def test_own_mapper_args_model_still_detects_lost_updates(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Optimistic locking works for that model: a stale copy fails on commit."""
    uow = NoteUnitOfWork(session_factory)
    async with uow:
        uow.notes.add(Note(id=1, body="first"))
        await uow.commit()
    async with uow:
        stale = await uow.notes.get(1)
    async with uow:
        (await uow.notes.get(1)).body = "second"
        await uow.commit()
    stale.body = "lost"
    async with uow:
        uow.notes.add(stale)
        with pytest.raises(ConcurrencyError) as caught:
            await uow.commit()
    assert (caught.value.entity, caught.value.id, caught.value.version) == ("Note", 1, 1)


def test_callable_mapper_args_that_drop_the_version_column_are_refused() -> None:
    """A __mapper_args__ function that leaves out version_id_col fails at configuration, naming the model."""

    class IsolatedBase(DeclarativeBase):
        """A registry of its own: the broken mapper must not poison ``keel.orm.Base``."""

    class Ticket(IsolatedBase, VersionMixin):
        __tablename__ = "core_tickets"
        id: Mapped[int] = mapped_column(primary_key=True)

        @declared_attr.directive
        def __mapper_args__(cls) -> dict[str, Any]:
            return {"eager_defaults": True}

    try:
        with pytest.raises(ConfigurationError, match="Ticket") as caught:
            IsolatedBase.registry.configure()
        assert caught.value.details == {"entity": "Ticket"}
    finally:
        IsolatedBase.registry.dispose()


def test_constraint_names_follow_the_naming_convention() -> None:
    """Primary keys and indexes get deterministic names, so migrations can address them."""
    assert Base.metadata.naming_convention == NAMING_CONVENTION
    table = Product.__table__
    assert isinstance(table, Table)
    assert table.primary_key.name == "pk_core_products"
    assert {index.name for index in table.indexes} == {"ix_core_products_deleted_at"}


def test_assigning_a_naive_datetime_is_a_validation_error_naming_the_attribute() -> None:
    """A naive datetime is refused where it is assigned, with a keel error, before any SQL."""
    product = Product(sku="LAMP", stock=1)
    with pytest.raises(ValidationError, match=r"Product\.deleted_at is a naive datetime") as caught:
        product.deleted_at = datetime(2024, 1, 1, 12, 0)
    assert caught.value.errors == [
        {
            "loc": ["deleted_at"],
            "msg": "a naive datetime; keel stores timezone-aware datetimes only",
            "type": "timezone_aware",
        }
    ]
    with pytest.raises(ValidationError, match="expected a datetime"):
        product.deleted_at = "2024-01-01"  # type: ignore[assignment]


async def test_a_naive_datetime_in_a_query_is_a_validation_error(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Filtering on a naive datetime fails with keel's ValidationError, not a driver StatementError."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        with pytest.raises(ValidationError, match="naive datetime"):
            await uow.products.list(Product.created_at < datetime(2030, 1, 1))


async def test_aware_datetimes_in_any_zone_come_back_as_the_same_instant_in_utc(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A value in UTC+05:30 is stored and read back as the same instant, with tzinfo UTC."""
    deleted = datetime(2024, 3, 1, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    uow = AppUnitOfWork(session_factory)
    async with uow:
        product = Product(sku="LAMP", stock=1)
        product.deleted_at = deleted
        uow.products.add(product)
        await uow.commit()
    async with uow:
        reloaded = await uow.products.get("LAMP", include_deleted=True)
        assert reloaded.deleted_at == deleted
        assert reloaded.deleted_at is not None
        assert reloaded.deleted_at.tzinfo is UTC
        assert reloaded.deleted_at.hour == 12
        assert await uow.products.count(Product.deleted_at == deleted, include_deleted=True) == 1
        assert await uow.products.count(Product.deleted_at == deleted.replace(tzinfo=UTC), include_deleted=True) == 0
