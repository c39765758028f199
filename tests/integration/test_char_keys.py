"""Fixed-width ``CHAR(n)`` primary keys: deleting several rows in one flush is checked as the database compares keys."""

from __future__ import annotations

import pytest
from sqlalchemy import CHAR
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from keel import ConcurrencyError, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import Base, VersionMixin
from tests.support.seeding import seed


class Voucher(Base, VersionMixin):
    __tablename__ = "char_key_vouchers"
    code: Mapped[str] = mapped_column(CHAR(8), primary_key=True)
    amount: Mapped[int] = mapped_column(default=0)


class VoucherUnitOfWork(SqlAlchemyUnitOfWork):
    vouchers: SqlAlchemyRepository[Voucher]


async def _seed(factory: async_sessionmaker[AsyncSession], *codes: str) -> None:
    await seed(VoucherUnitOfWork(factory), vouchers=(Voucher(code=code, amount=1) for code in codes))


async def test_deleting_several_char_keyed_rows_commits(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Keys shorter than the column (padded by the server) do not make an unchanged row look stale."""
    await _seed(session_factory, "ab", "cd", "efgh1234")
    async with VoucherUnitOfWork(session_factory) as uow:
        for code in ("ab", "cd", "efgh1234"):
            await uow.vouchers.hard_delete(await uow.vouchers.get(code))
        await uow.commit()
    async with VoucherUnitOfWork(session_factory) as uow:
        assert await uow.vouchers.count() == 0


async def test_deleting_several_char_keyed_rows_added_in_the_same_unit_of_work_commits(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Rows whose keys the session holds unpadded (it inserted them) are matched to the padded keys read back."""
    async with VoucherUnitOfWork(session_factory) as uow:
        added = uow.vouchers.add_many(Voucher(code=code, amount=1) for code in ("ab", "cd"))
        await uow.session.flush()
        for voucher in added:
            await uow.vouchers.hard_delete(voucher)
        await uow.commit()
    async with VoucherUnitOfWork(session_factory) as uow:
        assert await uow.vouchers.count() == 0


async def test_deleting_several_char_keyed_rows_still_catches_a_stale_one(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A row changed by someone else since it was loaded still fails the delete, naming that row only."""
    await _seed(session_factory, "ab", "cd")
    async with VoucherUnitOfWork(session_factory) as uow:
        held = [await uow.vouchers.get(code) for code in ("ab", "cd")]
        async with VoucherUnitOfWork(session_factory) as other:
            (await other.vouchers.get("cd")).amount = 5
            await other.commit()
        for voucher in held:
            await uow.vouchers.hard_delete(voucher)
        with pytest.raises(ConcurrencyError) as caught:
            await uow.commit()
    assert "cd" in {caught.value.details["id"], *caught.value.details.get("ids", ())}
    async with VoucherUnitOfWork(session_factory) as uow:
        assert await uow.vouchers.count() == 2
