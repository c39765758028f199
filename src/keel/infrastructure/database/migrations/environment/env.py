"""The Alembic ``env.py`` that ``keel db`` runs: the application's migrations beside keel's branch.

Alembic executes this file; :func:`keel.infrastructure.database.migrations._commands.db_config`
puts what it needs on ``config.attributes``: the target metadata (the
application's plus keel's) and, when the caller gave one, the URL.
"""

from __future__ import annotations

from alembic import context

from keel.infrastructure.database.migrations import run_migrations

run_migrations(context.config.attributes["keel.target_metadata"])
