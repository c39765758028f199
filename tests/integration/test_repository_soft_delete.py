"""Soft delete on the SQL paths a repository does not own: relationships and hand-written queries."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload, lazyload, selectinload, subqueryload

from keel.domain.messages import utcnow
from keel.infrastructure.repository import INCLUDE_DELETED
from tests.contract.models import ContractUnitOfWork, Document, Folder, Owner, Tag

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def owner_id(session_factory: Factory) -> int:
    """An owner with tags "keep" and "gone"; "gone" is soft-deleted."""
    uow = ContractUnitOfWork(session_factory)
    async with uow:
        owner = uow.owners.add(Owner(name="o", tags=[Tag(label="keep"), Tag(label="gone")]))
        await uow.commit()
    async with session_factory() as session:
        tag = (await session.scalars(select(Tag).where(Tag.label == "gone"))).one()
        tag.deleted_at = utcnow()
        await session.commit()
    return int(owner.id)


async def test_selectin_relationship_loads_hide_deleted_children(session_factory: Factory, owner_id: int) -> None:
    """Owner.tags (lazy="selectin") loaded through the repository leaves the deleted tag out."""
    async with ContractUnitOfWork(session_factory) as uow:
        owner = await uow.owners.get(owner_id)
        assert [t.label for t in owner.tags] == ["keep"]


@pytest.mark.parametrize("loader", [joinedload, selectinload, subqueryload], ids=lambda f: f.__name__)
async def test_eager_loader_options_hide_deleted_children(
    session_factory: Factory, owner_id: int, loader: object
) -> None:
    """joinedload, selectinload and subqueryload all apply the soft-delete criteria."""
    async with session_factory() as session:
        stmt = select(Owner).options(loader(Owner.tags))  # type: ignore[operator]
        owner = (await session.scalars(stmt)).unique().one()
        assert [t.label for t in owner.tags] == ["keep"]


async def test_lazy_relationship_loads_hide_deleted_children(session_factory: Factory, owner_id: int) -> None:
    """A lazy load of the relationship (awaitable_attrs) leaves the deleted tag out."""
    async with session_factory() as session:
        owner = await session.get(Owner, owner_id, options=[lazyload(Owner.tags)])
        assert owner is not None
        session.expire(owner, ["tags"])
        tags = await owner.awaitable_attrs.tags
        assert [t.label for t in tags] == ["keep"]


async def test_hand_written_selects_and_session_get_hide_deleted_rows(session_factory: Factory, owner_id: int) -> None:
    """select(Model), session.get and COUNT over an ORM subquery skip deleted rows unless opted in."""
    async with session_factory() as session:
        assert [t.label for t in await session.scalars(select(Tag).order_by(Tag.id))] == ["keep"]
        gone_id = (
            await session.scalars(select(Tag.id).where(Tag.label == "gone"), execution_options={INCLUDE_DELETED: True})
        ).one()
        assert await session.get(Tag, gone_id) is None
        assert await session.get(Tag, gone_id, execution_options={INCLUDE_DELETED: True}) is not None
        counted = await session.scalar(select(func.count()).select_from(select(Tag).subquery()))
        assert counted == 1
        everything = await session.scalars(select(Tag), execution_options={INCLUDE_DELETED: True})
        assert sorted(t.label for t in everything) == ["gone", "keep"]


async def test_relationships_to_imperatively_mapped_classes_hide_deleted_rows(session_factory: Factory) -> None:
    """A classical mapping with soft_delete_column() gets the same relationship filtering."""
    async with session_factory() as session:
        folder = Folder("inbox")
        folder.documents = [Document("a", "kept"), Document("b", "dropped")]
        session.add(folder)
        await session.commit()
    uow = ContractUnitOfWork(session_factory)
    async with uow:
        await uow.documents.delete(await uow.documents.get("b"))
        await uow.commit()
    async with session_factory() as session:
        loaded = (await session.scalars(select(Folder))).one()
        assert [d.ref for d in loaded.documents] == ["a"]


async def test_a_refresh_of_an_entity_deleted_meanwhile_still_loads(session_factory: Factory, owner_id: int) -> None:
    """Refreshing an entity already in hand is never filtered: it stays usable after a soft delete."""
    async with session_factory() as session:
        tag = (await session.scalars(select(Tag).where(Tag.label == "keep"))).one()
        tag.deleted_at = utcnow()
        await session.flush()
        await session.refresh(tag)
        assert tag.deleted_at is not None
