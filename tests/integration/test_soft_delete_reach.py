"""The soft-delete criteria are left out only where they cannot matter: by-key reads of unrelated models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ForeignKey, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keel.domain.messages import utcnow
from keel.orm import Base, SoftDeleteMixin

Factory = async_sessionmaker[AsyncSession]


class ReachLeaf(Base, SoftDeleteMixin):
    __tablename__ = "reach_leaves"
    id: Mapped[int] = mapped_column(primary_key=True)


class ReachNote(Base):
    """No soft delete and no relationship: nothing soft-deletable is reachable from it."""

    __tablename__ = "reach_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    leaf_id: Mapped[int]


class ReachHolder(Base):
    """No soft delete itself, but its joined relationship reaches one."""

    __tablename__ = "reach_holders"
    id: Mapped[int] = mapped_column(primary_key=True)
    leaf_id: Mapped[int] = mapped_column(ForeignKey("reach_leaves.id"))
    leaf: Mapped[ReachLeaf | None] = relationship(lazy="joined")


async def seed(session_factory: Factory) -> None:
    """Leaves 1 (live) and 2 (soft-deleted); a note and a holder pointing at each."""
    async with session_factory() as session, session.begin():
        session.add_all([ReachLeaf(id=1), ReachLeaf(id=2, deleted_at=utcnow())])
        session.add_all([ReachNote(id=1, leaf_id=1), ReachNote(id=2, leaf_id=2)])
        await session.flush()
        session.add_all([ReachHolder(id=1, leaf_id=1), ReachHolder(id=2, leaf_id=2)])


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_by_key_read_of_a_model_that_reaches_no_soft_deletable_class_has_no_criteria(
    engine: AsyncEngine, session_factory: Factory
) -> None:
    """session.get of such a model sends a plain SELECT by key, without the soft-delete rewrite."""
    await seed(session_factory)
    async with session_factory() as session:
        with statements(engine) as sent:
            note = await session.get(ReachNote, 2)
    assert note is not None
    assert [s for s in sent if "reach_notes" in s]
    assert not any("deleted_at" in s for s in sent)


async def test_a_joined_relationship_to_a_soft_deletable_class_still_hides_deleted_rows(
    session_factory: Factory,
) -> None:
    """session.get of a model whose joined eager load reaches a soft-deletable class filters that load."""
    await seed(session_factory)
    async with session_factory() as session:
        live, gone = await session.get(ReachHolder, 1), await session.get(ReachHolder, 2)
    assert live is not None
    assert live.leaf is not None
    assert gone is not None
    assert gone.leaf is None


async def test_a_join_from_an_unrelated_model_to_a_soft_deletable_one_still_hides_deleted_rows(
    session_factory: Factory,
) -> None:
    """select(Note).join(Leaf) is not a by-key read: the criteria apply to the joined class."""
    await seed(session_factory)
    async with session_factory() as session:
        joined = (await session.scalars(select(ReachNote).join(ReachLeaf, ReachNote.leaf_id == ReachLeaf.id))).all()
        by_key = (await session.scalars(select(ReachNote).where(ReachNote.id.in_([1, 2])))).all()
    assert [note.id for note in joined] == [1]
    assert sorted(note.id for note in by_key) == [1, 2]
