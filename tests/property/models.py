"""A table whose sort keys are small, duplicated and often NULL (tables prefixed ``repo_``)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork
from keel.orm import Base, SoftDeleteMixin


class Row(Base, SoftDeleteMixin):
    __tablename__ = "repo_walk_rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    a: Mapped[int | None]
    b: Mapped[int | None]
    c: Mapped[str | None] = mapped_column(String(4))
    n: Mapped[int] = mapped_column(default=0)


class WalkUnitOfWork(SqlAlchemyUnitOfWork):
    rows: SqlAlchemyRepository[Row]
