"""Soft delete on the SQL paths a repository does not own: relationships and hand-written queries."""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKey, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, joinedload, lazyload, mapped_column, relationship, selectinload, subqueryload

from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.domain.messages import utcnow
from keel.infrastructure.repository import INCLUDE_DELETED, IncludeDeleted
from keel.orm import Base, SoftDeleteMixin, VersionMixin
from tests.contract.models import ContractUnitOfWork, Document, Folder, Item, Owner, Tag
from tests.support.seeding import seed

Factory = async_sessionmaker[AsyncSession]


class Parent(Base, VersionMixin):
    __tablename__ = "repo_parents"
    id: Mapped[int] = mapped_column(primary_key=True)
    kids: Mapped[list[Kid]] = relationship(cascade="all, delete-orphan", lazy="selectin", order_by="Kid.id")
    pets: Mapped[list[Pet]] = relationship(lazy="selectin", order_by="Pet.id")


class Kid(Base, SoftDeleteMixin):
    """Deleted with its parent (cascade)."""

    __tablename__ = "repo_kids"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("repo_parents.id"))
    toys: Mapped[list[Toy]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class Toy(Base, SoftDeleteMixin):
    """Deleted with its kid, two levels below the parent."""

    __tablename__ = "repo_toys"
    id: Mapped[int] = mapped_column(primary_key=True)
    kid_id: Mapped[int] = mapped_column(ForeignKey("repo_kids.id"))


class Pet(Base, SoftDeleteMixin):
    """Outlives its parent: the ORM unlinks it (parent_id set to NULL)."""

    __tablename__ = "repo_pets"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("repo_parents.id"), default=None)


class FamilyUnitOfWork(SqlAlchemyUnitOfWork):
    parents: SqlAlchemyRepository[Parent]
    kids: SqlAlchemyRepository[Kid]
    pets: SqlAlchemyRepository[Pet]


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


async def test_hard_delete_reaches_soft_deleted_children_through_the_cascade(session_factory: Factory) -> None:
    """Deleting a parent for good deletes its soft-deleted kids and toys too, and unlinks soft-deleted pets."""
    async with FamilyUnitOfWork(session_factory) as uow:
        kids = [Kid(id=1, toys=[Toy(id=1), Toy(id=2)]), Kid(id=2, toys=[Toy(id=3)])]
        uow.parents.add(Parent(id=1, kids=kids, pets=[Pet(id=1), Pet(id=2)]))
        await uow.commit()
    async with FamilyUnitOfWork(session_factory) as uow:
        await uow.kids.delete(await uow.kids.get(2))
        await uow.pets.delete(await uow.pets.get(2))
        await uow.commit()
    async with session_factory() as session:
        toy = await session.get(Toy, 1)
        assert toy is not None
        toy.deleted_at = utcnow()  # a hidden toy under a visible kid
        await session.commit()
    async with FamilyUnitOfWork(session_factory) as uow:
        parent = await uow.parents.get(1)
        assert [k.id for k in parent.kids] == [1]
        await uow.parents.hard_delete(parent)
        await uow.commit()
    async with session_factory() as session:
        everything = {INCLUDE_DELETED: True}
        assert (await session.scalars(select(Kid), execution_options=everything)).all() == []
        assert (await session.scalars(select(Toy), execution_options=everything)).all() == []
        pets = (await session.scalars(select(Pet).order_by(Pet.id), execution_options=everything)).all()
        assert [(p.id, p.parent_id) for p in pets] == [(1, None), (2, None)]


async def test_sessions_keel_did_not_open_see_every_row(engine: AsyncEngine, session_factory: Factory) -> None:
    """A plain sessionmaker's sessions (a data migration, a script) are not filtered; keel's are."""
    await seed(ContractUnitOfWork(session_factory), items=[Item(id=1, name="live"), Item(id=2, name="gone")])
    async with ContractUnitOfWork(session_factory) as uow:
        await uow.items.delete(await uow.items.get(2))
        await uow.commit()
    plain = async_sessionmaker(engine)
    async with plain() as session:
        assert sorted(i.name for i in await session.scalars(select(Item))) == ["gone", "live"]
        assert await session.get(Item, 2) is not None
    async with session_factory() as session:
        assert [i.name for i in await session.scalars(select(Item))] == ["live"]
    async with ContractUnitOfWork(plain) as uow:  # a hand-built factory: the unit of work opts in
        assert [i.name for i in await uow.items.list()] == ["live"]
        assert [i.name for i in (await uow.session.scalars(select(Item))).all()] == ["live"]


async def test_merge_of_a_detached_soft_deleted_entity_updates_it_with_include_deleted(
    session_factory: Factory,
) -> None:
    """session.merge(entity, options=[IncludeDeleted()]) finds the soft-deleted row instead of inserting a copy."""
    await seed(ContractUnitOfWork(session_factory), items=[Item(id=1, name="a")])
    async with ContractUnitOfWork(session_factory) as uow:
        detached = await uow.items.get(1)
        await uow.items.delete(detached)
        await uow.commit()
    detached.name = "renamed"
    async with session_factory() as session:
        merged = await session.merge(detached, options=[IncludeDeleted()])
        await session.commit()
    assert merged.version == 3
    async with ContractUnitOfWork(session_factory) as uow:
        stored = await uow.items.get(1, include_deleted=True)
        assert (stored.name, stored.version) == ("renamed", 3)
        assert await uow.items.count(include_deleted=True) == 1
