"""Models for the repository contract suite (tables prefixed ``repo_``)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keel import AggregateRoot, DomainEvent, SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import (
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
    map_imperatively,
    soft_delete_column,
    timestamp_columns,
    version_column,
)


class Renamed(DomainEvent):
    id: int
    name: str


class Item(Base, AggregateRoot, VersionMixin, TimestampMixin, SoftDeleteMixin):
    """Soft-deletable, versioned, with nullable sort keys."""

    __tablename__ = "repo_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(20), default=None)
    rank: Mapped[int | None] = mapped_column(default=None)

    def rename(self, name: str) -> None:
        self.name = name
        self.record(Renamed(id=self.id, name=name))


class Slot(Base, AggregateRoot, VersionMixin, TimestampMixin, SoftDeleteMixin):
    """A unique code under a full (not partial) unique constraint: get_or_create and upsert key on it."""

    __tablename__ = "repo_slots"
    __table_args__ = (UniqueConstraint("code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20))
    qty: Mapped[int] = mapped_column(default=0)


class Handle(Base, VersionMixin, TimestampMixin, SoftDeleteMixin):
    """Unique among live rows only (a partial unique index): a deleted handle frees its name."""

    __tablename__ = "repo_handles"
    __table_args__ = (
        Index(
            "uq_repo_handles_name_live",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    owner: Mapped[str] = mapped_column(String(20), default="")


class Plain(Base):
    """No keel columns at all: deletes are hard, nothing is versioned."""

    __tablename__ = "repo_plain"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    qty: Mapped[int] = mapped_column(default=0)


class Note(Base):
    """Unbounded text: cursor pages sorted by it carry long values."""

    __tablename__ = "repo_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(Text)


class Owner(Base, AggregateRoot, VersionMixin):
    __tablename__ = "repo_owners"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    tags: Mapped[list[Tag]] = relationship(back_populates="owner", order_by="Tag.id", lazy="selectin")


class Tag(Base, SoftDeleteMixin):
    __tablename__ = "repo_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("repo_owners.id"))
    label: Mapped[str] = mapped_column(String(50))
    owner: Mapped[Owner] = relationship(back_populates="tags", lazy="raise")


# A pure domain class mapped imperatively, with soft delete through its column.
class Document:
    def __init__(self, ref: str, title: str) -> None:
        self.ref = ref
        self.title = title


documents = Table(
    "repo_documents",
    Base.metadata,
    Column("ref", String(20), primary_key=True),
    Column("title", String(100), nullable=False),
    Column("folder_id", Integer, ForeignKey("repo_folders.id"), nullable=True),
    version_column(),
    *timestamp_columns(),
    soft_delete_column(),
)


class Folder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.documents: list[Document] = []


folders = Table(
    "repo_folders",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)

map_imperatively(Document, documents)
map_imperatively(
    Folder, folders, properties={"documents": relationship(Document, order_by=documents.c.ref, lazy="selectin")}
)


class ItemRepository(SqlAlchemyRepository[Item]):
    async def ranked(self) -> list[Item]:
        """A custom query written against the public surface (works on the twin too)."""
        return await self.list(Item.rank.is_not(None), order_by="rank")


class ContractUnitOfWork(SqlAlchemyUnitOfWork):
    items: ItemRepository
    plain: SqlAlchemyRepository[Plain]
    slots: SqlAlchemyRepository[Slot]
    handles: SqlAlchemyRepository[Handle]
    owners: SqlAlchemyRepository[Owner]
    documents: SqlAlchemyRepository[Document]
    notes: SqlAlchemyRepository[Note]
