"""Aggregates with children for the aggregate-locking contract (tables prefixed ``lock_``).

The same "book the last seat" aggregate twice: declarative (``Show`` with
``Booking`` rows) and a pure domain class mapped imperatively (``Flight``
with ``Reservation`` rows), as in the allocation example.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keel import AggregateRoot, DomainError, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import Base, VersionMixin, map_imperatively, version_column


class SoldOut(DomainError):
    code = "sold_out"


def _check(capacity: int, seated: Sequence[Any], more: int) -> None:
    """The invariant both aggregates keep: never more seats booked than the capacity."""
    booked = sum(seat.seats for seat in seated)
    if booked + more > capacity:
        raise SoldOut(f"only {capacity - booked} seats left")


def _seat_of(seated: Sequence[Any], name: str) -> Any:
    return next(seat for seat in seated if seat.name == name)


class Show(Base, AggregateRoot, VersionMixin):
    """Declarative root; its bookings are parts through a cascading one-to-many."""

    __tablename__ = "lock_shows"
    id: Mapped[int] = mapped_column(primary_key=True)
    capacity: Mapped[int]
    title: Mapped[str] = mapped_column(String(50), default="")
    bookings: Mapped[list[Booking]] = relationship(cascade="all, delete-orphan", order_by="Booking.id", lazy="selectin")

    @property
    def booked(self) -> int:
        return sum(booking.seats for booking in self.bookings)

    def book(self, name: str, seats: int = 1) -> None:
        _check(self.capacity, self.bookings, seats)
        self.bookings.append(Booking(name=name, seats=seats))

    def resize(self, name: str, seats: int) -> None:
        """Change one child row, keeping the invariant."""
        booking = _seat_of(self.bookings, name)
        _check(self.capacity, self.bookings, seats - booking.seats)
        booking.seats = seats

    def cancel(self, name: str) -> None:
        self.bookings.remove(_seat_of(self.bookings, name))


class Booking(Base):
    __tablename__ = "lock_bookings"
    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("lock_shows.id"))
    name: Mapped[str] = mapped_column(String(50))
    seats: Mapped[int] = mapped_column(default=1)


class Flight(AggregateRoot):
    """A pure domain class: no SQLAlchemy, no version bump of its own."""

    def __init__(self, code: str, capacity: int, title: str = "") -> None:
        self.code = code
        self.capacity = capacity
        self.title = title
        self.reservations: list[Reservation] = []

    @property
    def booked(self) -> int:
        return sum(reservation.seats for reservation in self.reservations)

    def book(self, name: str, seats: int = 1) -> None:
        _check(self.capacity, self.reservations, seats)
        self.reservations.append(Reservation(name, seats))

    def resize(self, name: str, seats: int) -> None:
        """Change one child row, keeping the invariant."""
        reservation = _seat_of(self.reservations, name)
        _check(self.capacity, self.reservations, seats - reservation.seats)
        reservation.seats = seats

    def cancel(self, name: str) -> None:
        self.reservations.remove(_seat_of(self.reservations, name))


class Reservation:
    def __init__(self, name: str, seats: int = 1) -> None:
        self.name = name
        self.seats = seats


flights = Table(
    "lock_flights",
    Base.metadata,
    Column("code", String(20), primary_key=True),
    Column("capacity", Integer, nullable=False),
    Column("title", String(50), nullable=False, default=""),
    version_column(),
)
reservations = Table(
    "lock_reservations",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("flight_code", String(20), ForeignKey("lock_flights.code"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("seats", Integer, nullable=False),
)
map_imperatively(Reservation, reservations)
map_imperatively(
    Flight,
    flights,
    properties={
        "reservations": relationship(
            Reservation, cascade="all, delete-orphan", order_by=reservations.c.id, lazy="selectin"
        )
    },
)


class LockUnitOfWork(SqlAlchemyUnitOfWork):
    shows: SqlAlchemyRepository[Show]
    flights: SqlAlchemyRepository[Flight]
