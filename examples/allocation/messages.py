"""The allocation service's external messages: what leaves through the outbox, what comes in.

Cosmic Python's chapter 11 over Google Pub/Sub (see DESIGN.md): every
``Allocated`` event leaves on topic ``line_allocated`` with the book's body
``{"orderid", "sku", "qty", "batchref"}``, ordered per sku; messages on topic
``change_batch_quantity`` (``{"batchref", "qty"}``) become
``ChangeBatchQuantity`` commands. The routing lives here, in the service's
wiring, not on the domain classes.
"""

from __future__ import annotations

import json

from examples.allocation.domain.commands import ChangeBatchQuantity
from examples.allocation.domain.events import Allocated
from keel.domain.ports import IncomingMessage
from keel.outbox import OutboxRouting, Route

LINE_ALLOCATED = "line_allocated"
CHANGE_BATCH_QUANTITY = "change_batch_quantity"


def line_allocated_body(event: Allocated) -> dict[str, object]:
    """The book's ``line_allocated`` body: exactly these four fields."""
    return {"orderid": event.orderid, "sku": event.sku, "qty": event.qty, "batchref": event.batchref}


def allocated_sku(event: Allocated) -> str:
    """The ordering key: one sku's allocations go out in commit order."""
    return event.sku


#: Which events leave the service (the container's ``outbox_routes``).
routes = OutboxRouting({Allocated: Route(LINE_ALLOCATED, ordering_key=allocated_sku, payload=line_allocated_body)})


def change_batch_quantity_command(message: IncomingMessage) -> ChangeBatchQuantity:
    """The command a ``change_batch_quantity`` message asks for (a malformed body raises, so it is redelivered)."""
    body = json.loads(message.data)
    return ChangeBatchQuantity(ref=body["batchref"], qty=body["qty"])
