"""``keel.security``: who is acting (``Principal``), set for a block with ``as_principal``.

.. code-block:: python

    with as_principal(Principal(id="alice", permissions={"allocate"})):
        await bus.handle(Allocate(orderid="o1", sku="LAMP", qty=1))

The principal travels in message metadata (outbox rows, Pub/Sub attributes,
event store metadata), so a consumer can act as the original caller.
"""

from __future__ import annotations

from keel.cross_cutting.security import Principal, as_principal, current_principal

__all__ = ["Principal", "as_principal", "current_principal"]
