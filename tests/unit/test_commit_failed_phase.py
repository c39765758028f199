"""The optional commit_failed phase: participants hear of a commit that raised before committing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from keel import Participant
from keel.domain.messages import DomainEvent
from keel.service_layer.unit_of_work import AbstractUnitOfWork
from keel.testing import InMemoryUnitOfWork


class Refuses(Participant[AbstractUnitOfWork]):
    async def before_flush(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        raise RuntimeError("refused")


class Hears(Participant[AbstractUnitOfWork]):
    def __init__(self, fail: bool = False) -> None:
        self.heard: list[BaseException] = []
        self.fail = fail

    def commit_failed(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent], error: BaseException) -> None:
        self.heard.append(error)
        if self.fail:
            raise ValueError("the observer broke too")


class Plain:
    """A structural participant without commit_failed: it is simply skipped."""

    async def before_flush(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        pass

    async def after_flush(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        pass

    async def after_commit(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        pass


async def test_commit_failed_hears_the_error_and_a_failing_observer_does_not_replace_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every participant with the phase hears the commit's error; one that raises is logged; the error propagates."""
    broken, listener = Hears(fail=True), Hears()
    uow = InMemoryUnitOfWork(participants=[broken, Plain(), Refuses(), listener])
    with pytest.raises(RuntimeError, match="refused"):
        async with uow:
            await uow.commit()
    assert [str(e) for e in broken.heard] == ["refused"]
    assert [str(e) for e in listener.heard] == ["refused"]
    assert not uow.committed
    assert "Hears.commit_failed raised" in caplog.text


async def test_a_successful_commit_calls_no_commit_failed() -> None:
    """commit_failed is for failures only."""
    listener = Hears()
    async with InMemoryUnitOfWork(participants=[listener]) as uow:
        await uow.commit()
    assert listener.heard == []
