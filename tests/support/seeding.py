"""seed(): the rows a test starts from, added through one unit of work and committed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keel.service_layer import AbstractUnitOfWork


async def seed(uow: AbstractUnitOfWork, **entities: Iterable[Any]) -> list[Any]:
    """Open ``uow``, add each keyword's entities through the repository of that name, commit.

    ``await seed(new_uow(), items=[Item(name="a")], notes=notes)`` adds the items, then the
    notes, in one transaction, and returns every added entity in that order (keys the commit
    generated are set on them). Works on SQL and in-memory units of work alike.
    """
    added: list[Any] = []
    async with uow:
        for repository, rows in entities.items():
            added.extend(getattr(uow, repository).add_many(rows))
        await uow.commit()
    return added
