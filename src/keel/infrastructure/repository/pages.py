"""The repository's page types; they live in the domain (:mod:`keel.domain.pages`) beside the ports that return them."""

from __future__ import annotations

from keel.domain.pages import CursorPage, Page

__all__ = ["CursorPage", "Page"]
