"""Apply :class:`keel.config.RepositorySettings` to the repository classes.

Repositories are built by the unit of work with a session and nothing else,
so their tuning lives on the class: this sets the defaults that every
:class:`SqlAlchemyRepository` subclass (and the in-memory twin) inherits.
A subclass that sets its own ``max_page_size``, ``default_page_size`` or
``cursor_secret`` keeps it.
"""

from __future__ import annotations

from keel.config import KeelSettings, RepositorySettings
from keel.infrastructure.repository.cursor import set_default_cursor_secret
from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository


def configure_repositories(settings: KeelSettings | RepositorySettings) -> None:
    """Set page sizes and the cursor secret from settings (the container calls this).

    In ``KEEL_ENV=production`` the development cursor secret is refused.
    """
    production = False
    if isinstance(settings, KeelSettings):
        production = settings.env == "production"
        settings = settings.repository
    SqlAlchemyRepository.max_page_size = settings.max_page_size
    SqlAlchemyRepository.default_page_size = settings.default_page_size
    set_default_cursor_secret(settings.cursor_secret, production=production)


__all__ = ["configure_repositories"]
