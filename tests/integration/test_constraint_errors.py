"""Constraint violations: one error class per cause, naming the same constraint on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from keel import (
    CheckViolationError,
    ConflictError,
    ConstraintViolationError,
    ForeignKeyViolationError,
    NotNullViolationError,
    SqlAlchemyRepository,
    SqlAlchemyUnitOfWork,
)
from keel.orm import Base
from tests.support import seeding

Factory = async_sessionmaker[AsyncSession]
#: A value the messages must never echo (both backends quote values in theirs).
SECRET = "s3cret-value"


class Gauge(Base):
    __tablename__ = "err_gauges"
    __table_args__ = (CheckConstraint("low <= high", name="low_below_high"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    qty: Mapped[int] = mapped_column(CheckConstraint("qty >= 0", name="qty_not_negative"), default=0)
    label: Mapped[str] = mapped_column(String(20))
    low: Mapped[int] = mapped_column(default=0)
    high: Mapped[int] = mapped_column(default=0)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("err_gauges.id"), default=None)


class Label(Base):
    """Unique whatever the case: a unique index on an expression."""

    __tablename__ = "err_labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


Index("ix_err_labels_lower_name", func.lower(Label.name), unique=True)


class GaugeUnitOfWork(SqlAlchemyUnitOfWork):
    gauges: SqlAlchemyRepository[Gauge]
    labels: SqlAlchemyRepository[Label]


def gauge(**values: Any) -> Gauge:
    return Gauge(**{"code": SECRET, "label": "ok", **values})


Case = tuple[dict[str, Any], type[ConstraintViolationError], tuple[str | None, str, list[str]], str]
CASES: dict[str, Case] = {
    "duplicate key": (
        {"id": 1, "code": "other"},
        ConflictError,
        ("pk_err_gauges", "err_gauges", ["id"]),
        "a row with the same err_gauges.id already exists (pk_err_gauges)",
    ),
    "duplicate unique column": (
        {"id": 2},
        ConflictError,
        ("uq_err_gauges_code", "err_gauges", ["code"]),
        "a row with the same err_gauges.code already exists (uq_err_gauges_code)",
    ),
    "column check": (
        {"id": 2, "code": "c2", "qty": -1},
        CheckViolationError,
        ("ck_err_gauges_qty_not_negative", "err_gauges", []),
        "a value breaks a check constraint (ck_err_gauges_qty_not_negative)",
    ),
    "table check": (
        {"id": 2, "code": "c2", "low": 5, "high": 1},
        CheckViolationError,
        ("ck_err_gauges_low_below_high", "err_gauges", []),
        "a value breaks a check constraint (ck_err_gauges_low_below_high)",
    ),
    "not null": (
        {"id": 2, "code": "c2", "label": None},
        NotNullViolationError,
        (None, "err_gauges", ["label"]),
        "err_gauges.label must have a value",
    ),
    "foreign key": (
        {"id": 2, "code": "c2", "parent_id": 999},
        ForeignKeyViolationError,
        ("fk_err_gauges_parent_id_err_gauges", "err_gauges", ["parent_id"]),
        "a reference points at a missing row, or a row is still referenced (fk_err_gauges_parent_id_err_gauges)",
    ),
}


async def seed(session_factory: Factory) -> None:
    await seeding.seed(GaugeUnitOfWork(session_factory), gauges=[gauge(id=1)])


@pytest.mark.parametrize("case", list(CASES))
async def test_each_constraint_violation_has_its_class_and_names_the_constraint(
    session_factory: Factory, case: str
) -> None:
    """Unique -> ConflictError, check / not-null / foreign key -> their own codes, with identical details."""
    values, expected, (constraint, table, columns), message = CASES[case]
    await seed(session_factory)
    async with GaugeUnitOfWork(session_factory) as uow:
        uow.gauges.add(gauge(**values))
        with pytest.raises(ConstraintViolationError) as raised:
            await uow.commit()
    error = raised.value
    assert type(error) is expected
    assert (error.constraint, error.table, error.columns) == (constraint, table, columns)
    assert error.details == {"constraint": constraint, "table": table, "columns": columns}
    assert error.message == message
    shown = json.dumps(error.to_problem(409)) + str(error) + json.dumps(error.to_dict())
    assert SECRET not in shown
    assert "sqlstate" not in shown
    assert "999" not in shown


async def test_a_unique_expression_index_is_named_alike(session_factory: Factory) -> None:
    """SQLite names only the index, PostgreSQL spells the expression: both give the index and the column it reads."""
    await seeding.seed(GaugeUnitOfWork(session_factory), labels=[Label(id=1, name=SECRET)])
    async with GaugeUnitOfWork(session_factory) as uow:
        uow.labels.add(Label(id=2, name=SECRET.upper()))
        with pytest.raises(ConflictError) as raised:
            await uow.commit()
    error = raised.value
    assert error.details == {"constraint": "ix_err_labels_lower_name", "table": "err_labels", "columns": ["name"]}
    assert error.message == "a row with the same err_labels.name already exists (ix_err_labels_lower_name)"
    assert SECRET not in str(error.to_problem())
    assert SECRET.upper() not in str(error.to_problem())


async def test_a_violation_found_by_autoflush_in_a_query_is_typed_too(session_factory: Factory) -> None:
    """A NOT NULL violation flushed by a repository query is the same NotNullViolationError."""
    async with GaugeUnitOfWork(session_factory) as uow:
        uow.gauges.add(gauge(id=5, label=None))
        with pytest.raises(NotNullViolationError) as raised:
            await uow.gauges.list()
    assert raised.value.columns == ["label"]
    assert raised.value.details["entity"] == "Gauge"


async def test_deleting_a_referenced_row_is_a_foreign_key_violation(session_factory: Factory) -> None:
    """Removing a row others still point at is ForeignKeyViolationError, not a unique conflict."""
    await seed(session_factory)
    await seeding.seed(GaugeUnitOfWork(session_factory), gauges=[gauge(id=2, code="child", parent_id=1)])
    async with GaugeUnitOfWork(session_factory) as uow:
        with pytest.raises(ForeignKeyViolationError):
            await uow.gauges.delete_many(id=1)  # a DELETE statement: the ORM does not null out the child first
