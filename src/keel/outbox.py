"""``keel.outbox``: the transactional outbox, its relay, and idempotent consumers (the inbox).

.. code-block:: python

    routes = OutboxRouting({Allocated: Route("line_allocated", ordering_key=lambda e: e.sku)})
    uow = AppUnitOfWork(session_factory, participants=[OutboxWriter(routes)])   # the container does this
    relay = OutboxRelay(event_bus, session_factory)        # or: keel outbox relay
    await relay.run_until_signalled()

    consumer = IdempotentConsumer("reallocate", handle_change, uow_factory)
    await event_bus.subscribe("change_batch_quantity", "allocation", consumer)

See docs/outbox.md.

.. versionadded:: 0.3
"""

from __future__ import annotations

from keel.infrastructure.outbox.admin import OutboxStatus, ParkedMessage, outbox_status, purge, retry_parked
from keel.infrastructure.outbox.inbox import IdempotentConsumer, InboxHandler, message_key
from keel.infrastructure.outbox.relay import BatchResult, OutboxRelay
from keel.infrastructure.outbox.routing import OutboxRouting, Route
from keel.infrastructure.outbox.tables import inbox, outbox
from keel.infrastructure.outbox.writer import OutboxWriter

__all__ = [
    "BatchResult",
    "IdempotentConsumer",
    "InboxHandler",
    "OutboxRelay",
    "OutboxRouting",
    "OutboxStatus",
    "OutboxWriter",
    "ParkedMessage",
    "Route",
    "inbox",
    "message_key",
    "outbox",
    "outbox_status",
    "purge",
    "retry_parked",
]
