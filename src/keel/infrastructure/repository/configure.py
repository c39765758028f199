"""Process-wide repository defaults from :class:`keel.config.RepositorySettings`.

The usual place for repository settings is the session factory:
``create_session_factory(engine, repository_settings=settings)`` (the
container does this) puts them in every session's ``info``, where the
repositories built on those sessions find them, so two containers or
applications in one process keep their own.

:func:`configure_repositories` sets the fallback for everything else:
sessions from factories built by hand, and the in-memory twin. It changes
process-wide state (the base class's ``max_page_size`` and
``default_page_size``, the default cursor secret); a subclass that sets its
own ``max_page_size``, ``default_page_size`` or ``cursor_secret`` keeps it.
"""

from __future__ import annotations

from keel.config import KeelSettings, RepositorySettings
from keel.infrastructure.repository.cursor import set_default_cursor_secret
from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository


def configure_repositories(settings: KeelSettings | RepositorySettings) -> None:
    """Set the process-wide page sizes and cursor secret (the fallback; see the module docstring).

    In ``KEEL_ENV=production`` the development cursor secret is refused.
    """
    production = False
    if isinstance(settings, KeelSettings):
        production = settings.env == "production"
        settings = settings.repository
    SqlAlchemyRepository.max_page_size = settings.max_page_size
    SqlAlchemyRepository.default_page_size = settings.default_page_size
    set_default_cursor_secret(settings.cursor_secret, production=production)
