"""The example's message API in process: Allocated rows in the outbox, change_batch_quantity consumed once."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest
from dependency_injector import providers
from examples.allocation.consumer import change_batch_quantity_consumer, consume, messages_in_hand
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate, ChangeBatchQuantity, CreateBatch
from sqlalchemy import select

from examples.allocation import views
from keel import ConfigurationError
from keel.config import KeelSettings
from keel.domain.ports import IncomingMessage
from keel.outbox import outbox

#: The consumer holds its inbox row's transaction while the command commits: PostgreSQL only (see its module).
POSTGRES_ONLY = pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])


async def line_allocated_rows(container: AllocationContainer) -> list[tuple[str, str | None, dict[str, object]]]:
    async with container.session_factory()() as session:
        rows = await session.execute(select(outbox.c.topic, outbox.c.ordering_key, outbox.c.payload))
        return [(topic, key, json.loads(payload)) for topic, key, payload in rows]


async def test_allocated_leaves_through_the_outbox_with_the_books_body(container: AllocationContainer) -> None:
    """An allocation writes one line_allocated row: the book's four fields, ordered by sku."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="b1", sku="LAMP", qty=10))
    await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=3))
    body = {"orderid": "o1", "sku": "LAMP", "qty": 3, "batchref": "b1"}
    assert await line_allocated_rows(container) == [("line_allocated", "LAMP", body)]


@POSTGRES_ONLY
async def test_a_change_batch_quantity_message_reallocates_once_however_often_it_comes(
    container: AllocationContainer,
) -> None:
    """Delivered twice, the message moves the order once: the inbox (and the command's key) skip the repeat."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="old", sku="LAMP", qty=10, eta=date(2011, 1, 1)))
    await bus.handle(CreateBatch(ref="newer", sku="LAMP", qty=10, eta=date(2011, 1, 2)))
    await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=10))
    consumer = change_batch_quantity_consumer(bus, container.unit_of_work)
    message = IncomingMessage(
        data=json.dumps({"batchref": "old", "qty": 5}).encode(),
        attributes={},
        message_id="m-1",
        subscription="allocation-change-batch-quantity",
    )
    await consumer(message)
    await consumer(message)
    assert await views.allocations("o1", container.unit_of_work()) == [{"sku": "LAMP", "batchref": "newer"}]
    moved = [body for topic, _, body in await line_allocated_rows(container) if body["batchref"] == "newer"]
    assert moved == [{"orderid": "o1", "sku": "LAMP", "qty": 10, "batchref": "newer"}]


@POSTGRES_ONLY
async def test_a_redelivery_after_the_work_committed_is_not_applied_again(container: AllocationContainer) -> None:
    """The command's work commits with the message's key: a redelivery that the inbox missed is refused."""
    bus = container.bus()
    await bus.handle(CreateBatch(ref="b1", sku="LAMP", qty=10))
    consumer = change_batch_quantity_consumer(bus, container.unit_of_work)
    message = IncomingMessage(
        data=json.dumps({"batchref": "b1", "qty": 4}).encode(),
        attributes={"event_id": "e-1"},
        message_id="m-1",
        subscription="allocation-change-batch-quantity",
    )
    assert await consumer.apply(message, "first-delivery")  # as if its inbox row was lost with the consumer
    await bus.handle(ChangeBatchQuantity(ref="b1", qty=20))
    await bus.handle(Allocate(orderid="o2", sku="LAMP", qty=15))
    assert await consumer.apply(message, "second-delivery")  # applied again, it would deallocate o2
    assert await views.allocations("o2", container.unit_of_work()) == [{"sku": "LAMP", "batchref": "b1"}]


def test_the_consumer_holds_no_more_messages_than_half_the_connections() -> None:
    """Each message in hand holds two connections, so flow control stays under half the database's."""
    settings = KeelSettings(database={"max_connections": 30}, event_bus={"flow_control_max_messages": 1000})
    assert messages_in_hand(settings) == 15


async def test_the_consumer_refuses_sqlite(tmp_path: Path) -> None:
    """On SQLite the consumer would wait on its own write lock: it says so and does not start."""
    container = AllocationContainer()
    url = f"sqlite+aiosqlite:///{tmp_path / 'allocation.db'}"
    container.settings.override(providers.Object(KeelSettings(database={"url": url})))
    with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
        await consume(container, asyncio.Event())
