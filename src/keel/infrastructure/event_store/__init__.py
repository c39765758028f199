"""The event store's implementation; the public names are in :mod:`keel.event_store`.

Kept free of imports so :mod:`keel.infrastructure.database.tables` can load
the table definitions without pulling in the unit of work.
"""

from __future__ import annotations
