"""Models with every bounded column type, for hostile-input tests (tables prefixed ``repo_``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import BigInteger, Numeric, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import Base
from keel.testing import InMemoryStore, in_memory_unit_of_work


class Gauge(Base):
    """One column per bounded type: int32, int16, int64, numeric(8,2), varchar(5)."""

    __tablename__ = "repo_gauges"
    id: Mapped[int] = mapped_column(primary_key=True)
    qty: Mapped[int] = mapped_column(default=0)
    small: Mapped[int] = mapped_column(SmallInteger, default=0)
    big: Mapped[int] = mapped_column(BigInteger, default=0)
    price: Mapped[Decimal] = mapped_column(Numeric(8, 2), default=Decimal(0))
    code: Mapped[str] = mapped_column(String(5), default="")
    seen_at: Mapped[datetime | None] = mapped_column(default=None)
    ratio: Mapped[float | None] = mapped_column(default=None)


class Pair(Base):
    """A two-column key."""

    __tablename__ = "repo_pairs"
    left: Mapped[int] = mapped_column(primary_key=True)
    right: Mapped[str] = mapped_column(String(10), primary_key=True)


class GaugeUnitOfWork(SqlAlchemyUnitOfWork):
    gauges: SqlAlchemyRepository[Gauge]
    pairs: SqlAlchemyRepository[Pair]


InMemoryGaugeUnitOfWork = in_memory_unit_of_work(GaugeUnitOfWork)


def gauge_uow_factory(backend: str, request: pytest.FixtureRequest) -> Callable[[], Any]:
    """Fresh units of work over one data set on ``backend`` (memory, sqlite or postgresql)."""
    if backend == "memory":
        store = InMemoryStore()
        return lambda: InMemoryGaugeUnitOfWork(store)
    session_factory = request.getfixturevalue("session_factory")
    return lambda: GaugeUnitOfWork(session_factory)
