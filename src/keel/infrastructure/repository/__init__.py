"""Generic repositories: pages, keyset cursors, filters, soft delete, bulk changes."""

from __future__ import annotations

from keel.config import DEV_CURSOR_SECRET as DEV_CURSOR_SECRET
from keel.infrastructure.repository.configure import configure_repositories
from keel.infrastructure.repository.cursor import set_default_cursor_secret
from keel.infrastructure.repository.filters import Eq as Eq
from keel.infrastructure.repository.filters import Filter as Filter
from keel.infrastructure.repository.filters import In as In
from keel.infrastructure.repository.filters import IsNull as IsNull
from keel.infrastructure.repository.filters import Like as Like
from keel.infrastructure.repository.filters import Ne as Ne
from keel.infrastructure.repository.filters import Range as Range
from keel.infrastructure.repository.filters import escape_like
from keel.infrastructure.repository.filters import filters_from_query as filters_from_query
from keel.infrastructure.repository.pages import CursorPage as CursorPage
from keel.infrastructure.repository.pages import Page as Page
from keel.infrastructure.repository.soft_delete import INCLUDE_DELETED, IncludeDeleted
from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository as SqlAlchemyRepository

# The ``X as X`` imports above keep old paths working for keel's own modules; their public
# path is keel (keel.config for DEV_CURSOR_SECRET) (docs/architecture.md, "Public paths").
__all__ = [
    "INCLUDE_DELETED",
    "IncludeDeleted",
    "configure_repositories",
    "escape_like",
    "set_default_cursor_secret",
]
