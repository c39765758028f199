"""Aggregate-wide locking on SQL only: parts found without the root loaded, declared owners, opt-outs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import ForeignKey, String, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keel import AggregateRoot, ConcurrencyError, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.infrastructure.database.aggregate_lock import plan_of
from keel.orm import Base, VersionMixin
from tests.contract.aggregate_models import Booking, LockUnitOfWork, Show
from tests.models import Counter
from tests.support.seeding import seed


class Venue(Base, AggregateRoot, VersionMixin):
    """Its tickets point at it without a cascade from here: they declare the venue as their owner."""

    __tablename__ = "lock_venues"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    sponsors: Mapped[list[Sponsor]] = relationship(info={"keel": "reference"}, order_by="Sponsor.id", lazy="selectin")


class Ticket(Base):
    __tablename__ = "lock_tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("lock_venues.id"))
    holder: Mapped[str] = mapped_column(String(50))
    venue: Mapped[Venue] = relationship(info={"keel": "aggregate"}, lazy="raise")


class Sponsor(Base):
    """Listed by a venue through a cascading collection marked as a mere reference."""

    __tablename__ = "lock_sponsors"
    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("lock_venues.id"))
    name: Mapped[str] = mapped_column(String(50))


class VenueUnitOfWork(SqlAlchemyUnitOfWork):
    venues: SqlAlchemyRepository[Venue]
    tickets: SqlAlchemyRepository[Ticket]


async def version_of(session_factory: async_sessionmaker[AsyncSession], model: type[Any], key: object) -> int:
    async with session_factory() as session:
        found: Any = await session.get(model, key)
        assert found is not None
        return int(found.version)


def test_a_root_without_parts_has_no_locking_plan() -> None:
    """An aggregate without children costs nothing per flush: its mapper has no plan, and neither do unrelated ones."""
    assert plan_of(inspect(Counter)) is None
    show = plan_of(inspect(Show))
    assert show is not None
    assert show.root
    assert show.parts == ("bookings",)
    booking = plan_of(inspect(Booking))
    assert booking is not None
    assert [edge.parent.class_ for edge in booking.edges] == [Show]


async def test_a_part_changed_through_its_own_query_bumps_the_unloaded_root(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A booking loaded and changed without its show in the session still bumps the show (found by its key)."""
    async with LockUnitOfWork(session_factory) as uow:
        uow.shows.add(Show(id=1, capacity=5)).book("ann")
        await uow.commit()
    async with LockUnitOfWork(session_factory) as uow:
        booking = (await uow.session.execute(select(Booking))).scalar_one()
        booking.seats = 2
        await uow.commit()
    assert await version_of(session_factory, Show, 1) == 2


async def test_a_part_changed_alone_conflicts_with_a_concurrent_change_of_its_root(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Changing a booking row directly while another unit of work changed the show: ConcurrencyError."""
    async with LockUnitOfWork(session_factory) as uow:
        uow.shows.add(Show(id=1, capacity=5)).book("ann")
        await uow.commit()
    first, second = LockUnitOfWork(session_factory), LockUnitOfWork(session_factory)
    async with first, second:
        (await first.shows.get(1)).book("bob")
        booking = (await second.session.execute(select(Booking).where(Booking.name == "ann"))).scalar_one()
        await second.shows.get(1)  # the root is loaded at version 1 before the other commit
        await first.commit()
        booking.seats = 4
        with pytest.raises(ConcurrencyError) as caught:
            await second.commit()
    assert caught.value.details["entity"] == "Show"
    assert caught.value.details["version"] == 1


async def test_a_part_declared_on_its_many_to_one_bumps_its_owner(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """info={"keel": "aggregate"} on Ticket.venue makes new, changed and deleted tickets bump the venue."""
    await seed(VenueUnitOfWork(session_factory), venues=[Venue(id=1, name="hall")])
    [ticket] = await seed(VenueUnitOfWork(session_factory), tickets=[Ticket(venue_id=1, holder="ann")])
    assert await version_of(session_factory, Venue, 1) == 2
    async with VenueUnitOfWork(session_factory) as uow:
        (await uow.tickets.get(ticket.id)).holder = "bob"
        await uow.commit()
    assert await version_of(session_factory, Venue, 1) == 3
    async with VenueUnitOfWork(session_factory) as uow:
        await uow.tickets.hard_delete(await uow.tickets.get(ticket.id))
        await uow.commit()
    assert await version_of(session_factory, Venue, 1) == 4


async def test_two_units_of_work_adding_declared_parts_cannot_both_commit(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Two tickets for one venue added concurrently through the ticket repository: the second gets ConcurrencyError."""
    await seed(VenueUnitOfWork(session_factory), venues=[Venue(id=1, name="hall")])
    first, second = VenueUnitOfWork(session_factory), VenueUnitOfWork(session_factory)
    async with first, second:
        await first.venues.get(1)
        await second.venues.get(1)
        first.tickets.add(Ticket(venue_id=1, holder="ann"))
        second.tickets.add(Ticket(venue_id=1, holder="bob"))
        await first.commit()
        with pytest.raises(ConcurrencyError):
            await second.commit()


async def test_a_collection_marked_as_a_reference_does_not_bump_the_root(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """info={"keel": "reference"} takes a cascading collection out of the aggregate."""
    await seed(VenueUnitOfWork(session_factory), venues=[Venue(id=1, name="hall")])
    async with VenueUnitOfWork(session_factory) as uow:
        (await uow.venues.get(1)).sponsors.append(Sponsor(name="acme"))
        await uow.commit()
    assert await version_of(session_factory, Venue, 1) == 1


async def test_each_flush_of_a_part_change_is_one_version(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """A part change, an autoflushing query and another part change are two UPDATEs of the root, as for columns."""
    await seed(LockUnitOfWork(session_factory), shows=[Show(id=1, capacity=5)])
    async with LockUnitOfWork(session_factory) as uow:
        show = await uow.shows.get(1)
        show.book("ann")
        await uow.shows.count()  # autoflush
        show.book("bob")
        show.title = "late"
        await uow.commit()
    assert show.version == 3
