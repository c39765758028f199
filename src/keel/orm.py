"""ORM building blocks for application models.

.. code-block:: python

    from keel.orm import Base, TimestampMixin, VersionMixin, SoftDeleteMixin

An application with several bounded contexts gives each its own declarative
base and metadata: ``class CatalogBase(KeelBase): pass`` (see docs/models.md).
"""

from __future__ import annotations

from keel.infrastructure.database import tables as _tables  # noqa: F401  (fills keel_metadata)
from keel.infrastructure.database.columns import BigIntIdentityMixin, PortableJSON, UUIDv7PrimaryKeyMixin, uuid7
from keel.infrastructure.database.orm import (
    NAMING_CONVENTION,
    Base,
    KeelBase,
    ModelTraits,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
    keel_metadata,
    map_imperatively,
    model_traits,
    soft_delete_column,
    timestamp_columns,
    version_column,
)
from keel.infrastructure.database.types import UTCDateTime

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "BigIntIdentityMixin",
    "KeelBase",
    "ModelTraits",
    "PortableJSON",
    "SoftDeleteMixin",
    "TimestampMixin",
    "UTCDateTime",
    "UUIDv7PrimaryKeyMixin",
    "VersionMixin",
    "keel_metadata",
    "map_imperatively",
    "model_traits",
    "soft_delete_column",
    "timestamp_columns",
    "uuid7",
    "version_column",
]
