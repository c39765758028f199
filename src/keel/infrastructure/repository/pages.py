"""The repository's page types; they live in the domain (:mod:`keel.domain.pages`) beside the ports that return them."""

from __future__ import annotations

# ``X as X``, not ``__all__``: re-exported for keel's own modules, not advertised; the public path of
# these names is ``keel`` (docs/architecture.md, "Public paths").
from keel.domain.pages import CursorPage as CursorPage
from keel.domain.pages import Page as Page
