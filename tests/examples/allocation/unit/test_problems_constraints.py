"""Constraint violations other than unique conflicts answer 422; a unique conflict stays 409."""

from __future__ import annotations

import pytest

from keel import (
    CheckViolationError,
    ConflictError,
    ConstraintViolationError,
    ForeignKeyViolationError,
    KeelError,
    NotNullViolationError,
)
from keel.ext.fastapi import status_for


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConflictError(constraint="uq_batches_reference"), 409),
        (CheckViolationError(constraint="ck_batches_qty"), 422),
        (NotNullViolationError(table="batches", columns=["sku"]), 422),
        (ForeignKeyViolationError(constraint="fk_lines_batch"), 422),
        (ConstraintViolationError(), 422),
    ],
)
def test_each_constraint_violation_has_its_http_status(error: KeelError, status: int) -> None:
    """The data breaking a rule is the client's 422; only the unique conflict is 409."""
    assert status_for(error) == status
