"""The soft-delete criteria are left out only where they cannot matter: by-key reads of unrelated models."""

from __future__ import annotations

from sqlalchemy import ForeignKey, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, ORMExecuteState, mapped_column, relationship
from sqlalchemy.orm.util import LoaderCriteriaOption

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


def criteria_options(session: AsyncSession) -> list[list[str]]:
    """The loader-criteria options of each ORM statement ``session`` runs, as keel's listener left it."""
    seen: list[list[str]] = []

    def record(state: ORMExecuteState) -> None:  # runs after keel's class-level listener
        options = state.statement._with_options
        seen.append([type(o).__name__ for o in options if isinstance(o, LoaderCriteriaOption)])

    event.listen(session.sync_session, "do_orm_execute", record)
    return seen


async def test_a_by_key_read_of_a_model_that_reaches_no_soft_deletable_class_has_no_criteria(
    session_factory: Factory,
) -> None:
    """session.get of such a model sends a plain SELECT by key, without the soft-delete rewrite."""
    await seed(session_factory)
    async with session_factory() as session:
        seen = criteria_options(session)
        note = await session.get(ReachNote, 2)
        await session.get(ReachLeaf, 1)
    assert note is not None
    assert seen[0] == []
    assert seen[1]  # a soft-deletable model still gets them


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
