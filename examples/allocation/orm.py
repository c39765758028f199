"""The classical mapping of the allocation domain onto ``keel.orm.Base.metadata``.

The domain classes never import SQLAlchemy; this module gives them tables,
keel's version column (optimistic locking on the ``Product`` aggregate) and
timestamps. Importing it maps the classes (the Alembic environment and the
application both do).
"""

from __future__ import annotations

from sqlalchemy import Column, Date, ForeignKey, Integer, String, Table
from sqlalchemy.orm import relationship

from examples.allocation.domain.model import Batch, OrderLine, Product
from examples.allocation.views import AllocationRow
from keel.orm import Base, map_imperatively, timestamp_columns, version_column

metadata = Base.metadata

products = Table(
    "products",
    metadata,
    Column("sku", String(255), primary_key=True),
    version_column(),
    *timestamp_columns(),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(255), nullable=False, unique=True),
    Column("sku", String(255), ForeignKey("products.sku"), nullable=False, index=True),
    Column("purchased_quantity", Integer, nullable=False),
    Column("eta", Date, nullable=True),
    *timestamp_columns(),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("orderid", String(255), nullable=False, index=True),
    Column("sku", String(255), nullable=False),
    Column("qty", Integer, nullable=False),
)

allocations = Table(
    "allocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("orderline_id", Integer, ForeignKey("order_lines.id"), nullable=False, index=True),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False, index=True),
)

#: The read model: written by event handlers, read by the GET endpoint.
allocations_view = Table(
    "allocations_view",
    metadata,
    Column("orderid", String(255), primary_key=True),
    Column("sku", String(255), primary_key=True),
    Column("batchref", String(255), nullable=False),
)

map_imperatively(OrderLine, order_lines)
map_imperatively(
    Batch,
    batches,
    properties={
        "_purchased_quantity": batches.c.purchased_quantity,
        # Loaded with the batch ("selectin"): an async session cannot lazy-load later.
        "_allocations": relationship(OrderLine, secondary=allocations, collection_class=set, lazy="selectin"),
    },
)
map_imperatively(
    Product,
    products,
    properties={"batches": relationship(Batch, lazy="selectin", order_by=batches.c.id)},
)
map_imperatively(AllocationRow, allocations_view)
