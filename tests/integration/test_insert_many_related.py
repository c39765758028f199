"""insert_many of entities carrying related objects, checked in the database's own rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import SqlAlchemyRepository
from tests.contract.models import Document, Folder, Owner, Tag, documents


async def test_insert_many_of_children_given_their_parent_sets_the_foreign_key(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A child's ``owner=`` becomes its ``owner_id``, for a stored parent and for a new one."""
    async with session_factory() as session:
        stored = Owner(name="stored")
        session.add(stored)
        await session.commit()
        fresh = Owner(name="fresh")
        tags = SqlAlchemyRepository(session, model=Tag)
        assert await tags.insert_many([Tag(label="a", owner=stored), Tag(label="b", owner=fresh)]) == 2
        await session.commit()
        rows = (await session.execute(select(Tag.label, Tag.owner_id).order_by(Tag.label))).all()
        assert [tuple(r) for r in rows] == [("a", stored.id), ("b", fresh.id)]
        assert fresh.id is not None


async def test_insert_many_saves_children_of_imperatively_mapped_parents(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A classically mapped parent's collection is saved too, each child pointing at it."""
    async with session_factory() as session:
        folder = Folder("inbox")
        folder.documents = [Document("d1", "One"), Document("d2", "Two")]
        assert await SqlAlchemyRepository(session, model=Folder).insert_many([folder]) == 1
        await session.commit()
        rows = (await session.execute(select(documents.c.ref, documents.c.folder_id).order_by("ref"))).all()
        assert [tuple(r) for r in rows] == [("d1", folder.id), ("d2", folder.id)]  # type: ignore[attr-defined]
