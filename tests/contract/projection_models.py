"""A projection for the projection tests: one read-model row per event it applies, so a double shows."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import BigInteger, Column, Integer, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel import DomainEvent
from keel.event_store import Projection, RecordedEvent
from keel.orm import Base
from tests.contract.event_store_models import Deposited, Opened, Withdrawn

#: No primary key on purpose: an event applied twice leaves two rows instead of failing loudly.
projected_rows = Table(
    "test_projected_rows",
    Base.metadata,
    Column("projection", String(100), nullable=False),
    Column("position", BigInteger(), nullable=False),
    Column("stream_id", String(200), nullable=False),
    Column("amount", Integer(), nullable=False),
)


class Crash(Exception):
    """Raised by the projection to simulate a crash between its writes and the checkpoint."""


class LedgerProjection(Projection):
    """Writes (position, stream, signed amount) per event; fails at ``fail_at`` when asked to."""

    name: ClassVar[str] = "ledger"

    def __init__(self, name: str | None = None, fail_at: int | None = None) -> None:
        if name is not None:
            self.name = name  # type: ignore[misc]  # an instance-level name: the same class under several names
        self.fail_at = fail_at
        self.handled = 0

    async def handle(self, record: RecordedEvent, session: AsyncSession) -> None:
        self.handled += 1
        amount = 0
        match record.event:
            case Deposited(amount=value):
                amount = value
            case Withdrawn(amount=value):
                amount = -value
            case Opened():
                amount = 0
        await session.execute(
            insert(projected_rows).values(
                projection=self.name, position=record.position, stream_id=record.stream_id, amount=amount
            )
        )
        if record.position == self.fail_at:
            raise Crash(f"crash at {record.position}")

    async def reset(self, session: AsyncSession) -> None:
        await session.execute(delete(projected_rows).where(projected_rows.c.projection == self.name))


class DepositsOnly(LedgerProjection):
    """Reads only Deposited events."""

    name: ClassVar[str] = "deposits"
    types: ClassVar[tuple[type[DomainEvent] | str, ...] | None] = (Deposited,)


async def rows_of(session: AsyncSession, projection: str) -> list[tuple[int, str, int]]:
    """The projection's read model, in position order."""
    result = await session.execute(
        select(projected_rows.c.position, projected_rows.c.stream_id, projected_rows.c.amount)
        .where(projected_rows.c.projection == projection)
        .order_by(projected_rows.c.position)
    )
    return [(int(p), str(s), int(a)) for p, s, a in result.all()]
