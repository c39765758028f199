"""Models with keel's key mixins and JSON column for the keys contract (tables prefixed ``keys_``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import Base, BigIntIdentityMixin, PortableJSON, UUIDv7PrimaryKeyMixin, VersionMixin


class Ticket(Base, UUIDv7PrimaryKeyMixin, VersionMixin):
    __tablename__ = "keys_tickets"
    title: Mapped[str] = mapped_column(String(100))
    labels: Mapped[Any] = mapped_column(PortableJSON(), nullable=True)


class Reading(Base, BigIntIdentityMixin):
    __tablename__ = "keys_readings"
    sensor: Mapped[str] = mapped_column(String(50))


class KeysUnitOfWork(SqlAlchemyUnitOfWork):
    tickets: SqlAlchemyRepository[Ticket]
    readings: SqlAlchemyRepository[Reading]
