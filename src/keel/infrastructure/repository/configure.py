"""Where :func:`configure_repositories` was first defined; it lives in :mod:`keel.infrastructure.repository.settings`.

It sets the process-wide fallback (:data:`~keel.infrastructure.repository.settings.repository_defaults`)
for sessions from factories built by hand and for the in-memory twin; a
session factory's ``repository_settings`` and a repository subclass's own
values win over it.
"""

from __future__ import annotations

from keel.infrastructure.repository.settings import configure_repositories as configure_repositories
