"""The error a flush raises when rows it was about to delete were changed by someone else.

Apart from the listeners that raise it (``stale_deletes``), so the error
translator and the unit of work can name it without importing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm.exc import StaleDataError

from keel.cross_cutting.error import ConcurrencyError


class StaleRowsError(StaleDataError):
    """Versioned rows a flush was about to delete were changed or deleted by someone else."""

    def __init__(self, table: str, entity: str, stale: Sequence[tuple[Any, int]], expected: int) -> None:
        super().__init__(
            f"DELETE statement on table '{table}' expected to delete {expected} row(s); "
            f"{expected - len(stale)} were matched."
        )
        self.table = table
        self.entity = entity
        #: (identity, version held) of each stale row.
        self.stale = list(stale)

    def to_keel_error(self) -> ConcurrencyError:
        """The :class:`ConcurrencyError` naming the stale rows."""
        if len(self.stale) == 1:
            identity, version = self.stale[0]
            return ConcurrencyError(entity=self.entity, id=identity, version=version)
        return ConcurrencyError(
            f"{len(self.stale)} {self.entity} rows were changed by someone else",
            entity=self.entity,
            ids=[str(identity) for identity, _ in self.stale],
            versions=[version for _, version in self.stale],
        )
