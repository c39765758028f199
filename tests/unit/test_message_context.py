"""Correlation, causation and principal: the metadata every stored or sent message carries."""

from __future__ import annotations

import asyncio

from keel.infrastructure.message_metadata import current_metadata
from keel.security import Principal, as_principal, current_principal
from keel.service_layer.context import current_causation_id, current_correlation_id, message_context


def test_outside_any_context_there_is_no_metadata() -> None:
    """No correlation, causation or principal: the metadata is empty (no trace is active either)."""
    assert current_correlation_id() is None
    assert current_metadata() == {}


def test_a_block_gets_a_new_correlation_and_nested_blocks_keep_it() -> None:
    """A new correlation is drawn once; a nested block without an id joins it; both reset afterwards."""
    with message_context(causation_id="cmd-1") as outer:
        assert current_correlation_id() == outer
        with message_context() as inner:
            assert inner == outer
            assert current_causation_id() == "cmd-1"
        with message_context(correlation_id="given", causation_id="evt-2") as explicit:
            assert explicit == "given"
            assert current_causation_id() == "evt-2"
        assert current_correlation_id() == outer
    assert current_correlation_id() is None
    assert current_causation_id() is None


def test_metadata_carries_the_principal_as_json() -> None:
    """The principal is written as JSON that parses back into the same principal."""
    alice = Principal(id="alice", roles=frozenset({"clerk"}), permissions=frozenset({"allocate"}))
    with message_context(correlation_id="c1", causation_id="m1"), as_principal(alice):
        metadata = current_metadata()
    assert metadata["correlation_id"] == "c1"
    assert metadata["causation_id"] == "m1"
    assert Principal.model_validate_json(metadata["principal"]) == alice
    assert alice.has("allocate")
    assert not alice.has("allocate", "refund")


async def test_the_principal_is_per_task() -> None:
    """A principal set in one task is not seen by a task started outside its block."""
    seen: list[Principal | None] = []

    async def look() -> None:
        seen.append(current_principal())

    with as_principal(Principal(id="bob")):
        inside = asyncio.create_task(look())
    outside = asyncio.create_task(look())
    await asyncio.gather(inside, outside)
    assert [p.id if p else None for p in seen] == ["bob", None]
    assert current_principal() is None
