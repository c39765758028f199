"""Generic repositories: pages, keyset cursors, filters, soft delete, bulk changes."""

from __future__ import annotations

from keel.infrastructure.repository.configure import configure_repositories
from keel.infrastructure.repository.cursor import DEV_CURSOR_SECRET, set_default_cursor_secret
from keel.infrastructure.repository.filters import (
    Eq,
    Filter,
    In,
    IsNull,
    Like,
    Ne,
    Range,
    escape_like,
    filters_from_query,
)
from keel.infrastructure.repository.pages import CursorPage, Page
from keel.infrastructure.repository.soft_delete import INCLUDE_DELETED, IncludeDeleted
from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository

__all__ = [
    "DEV_CURSOR_SECRET",
    "INCLUDE_DELETED",
    "CursorPage",
    "Eq",
    "Filter",
    "In",
    "IncludeDeleted",
    "IsNull",
    "Like",
    "Ne",
    "Page",
    "Range",
    "SqlAlchemyRepository",
    "configure_repositories",
    "escape_like",
    "filters_from_query",
    "set_default_cursor_secret",
]
