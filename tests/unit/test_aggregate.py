"""AggregateRoot: pending events, even on instances built without calling ``__init__``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import inspect

from keel import AggregateRoot, DomainEvent
from tests.models import Account, Allocated, Product


class Opened(DomainEvent):
    ref: str


def refs(events: Sequence[DomainEvent]) -> list[str]:
    """The refs of ``events``, each of which must be an ``Opened``."""
    assert all(isinstance(e, Opened) for e in events)
    return [e.ref for e in events if isinstance(e, Opened)]


class Ledger(AggregateRoot):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.record(Opened(ref=ref))


def test_recorded_events_are_pending_in_order_until_pulled() -> None:
    """record() appends; pull_events() returns them oldest first and empties the list."""
    ledger = Ledger("L1")
    ledger.record(Opened(ref="L1-again"))
    assert refs(ledger.pending_events) == ["L1", "L1-again"]
    assert refs(ledger.pull_events()) == ["L1", "L1-again"]
    assert ledger.pending_events == []
    assert ledger.pull_events() == []


def test_clear_events_drops_pending_events() -> None:
    """clear_events() forgets what was recorded (its work was rolled back)."""
    ledger = Ledger("L1")
    ledger.clear_events()
    assert ledger.pending_events == []


def test_an_instance_built_without_init_has_pending_events() -> None:
    """cls.__new__(cls), as deserialisers do, still has an empty event list that can record."""
    ledger = Ledger.__new__(Ledger)
    assert ledger.pending_events == []
    ledger.record(Opened(ref="L2"))
    assert refs(ledger.pull_events()) == ["L2"]


def test_instances_the_orm_builds_have_pending_events() -> None:
    """Declarative and imperatively mapped classes built by SQLAlchemy's loader can record at once."""
    for model in (Product, Account):
        instance = inspect(model).class_manager.new_instance()
        assert instance.pending_events == []
        instance.record(Allocated(sku="LAMP", qty=1))
        assert len(instance.pull_events()) == 1


def test_each_aggregate_has_its_own_events() -> None:
    """Events recorded on one instance never show up on another (no shared class-level list)."""
    first, second = Ledger("A"), Ledger("B")
    first.record(Opened(ref="A2"))
    assert refs(second.pending_events) == ["B"]
    assert refs(first.pending_events) == ["A", "A2"]


def test_pending_events_are_not_a_mapped_attribute() -> None:
    """The event list lives outside the ORM's columns, so it is never flushed or marked dirty."""
    product = Product(sku="LAMP", stock=1)
    changed_before = set(inspect(product).committed_state)
    product.record(Allocated(sku="LAMP", qty=1))
    assert set(inspect(product).committed_state) == changed_before
    assert "pending_events" not in inspect(Product).attrs
    assert "_keel_pending_events" not in inspect(Product).attrs
