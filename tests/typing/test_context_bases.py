"""Models on a bounded context's own base are typed like models on ``Base`` (mypy checks this module)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import KeelBase, TimestampMixin, VersionMixin


class LibraryBase(KeelBase):
    pass


class Book(LibraryBase, VersionMixin, TimestampMixin):
    __tablename__ = "typing_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]


class LibraryUnitOfWork(SqlAlchemyUnitOfWork):
    books: SqlAlchemyRepository[Book]


async def describe(uow: LibraryUnitOfWork, id: int) -> tuple[str, int, datetime]:
    """mypy sees each Mapped attribute with its Python type through the repository."""
    book = await uow.books.get(id)
    return book.title, book.version, book.created_at


def titled(title: str) -> Select[Book]:
    """Class-level attributes are typed column expressions."""
    return select(Book).where(Book.title == title)


def test_a_context_base_is_a_declarative_base_whose_models_are_typed() -> None:
    """A KeelBase subclass is a DeclarativeBase; its models' attributes and queries type-check (mypy, above)."""
    base: type[DeclarativeBase] = LibraryBase
    assert base.metadata.tables["typing_books"] is Book.__table__
    assert "typing_books" in str(titled("Dune"))
    assert Book(id=1, title="Dune").title == "Dune"
