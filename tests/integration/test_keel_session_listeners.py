"""keel's session listeners touch keel's sessions only; a plain ``async_sessionmaker`` sees plain SQLAlchemy."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.contract.aggregate_models import Booking, LockUnitOfWork, Show


async def show_version(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        show = await session.get(Show, 1)
        assert show is not None
        return int(show.version)


async def test_a_plain_sessionmaker_does_not_bump_the_root_of_a_changed_part(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A session keel did not open or mark skips aggregate-wide locking; keel's sessions still bump the root."""
    async with LockUnitOfWork(session_factory) as uow:
        uow.shows.add(Show(id=1, capacity=5)).book("ann")
        await uow.commit()
    plain = async_sessionmaker(engine, expire_on_commit=False)
    async with plain() as session, session.begin():
        (await session.scalars(select(Booking))).one().seats = 2
    assert await show_version(session_factory) == 1
    async with session_factory() as session, session.begin():
        (await session.scalars(select(Booking))).one().seats = 3
    assert await show_version(session_factory) == 2
