"""The Alembic ``env.py`` that ``keel db`` runs: the application's migrations beside keel's branch.

Alembic executes this file; :func:`keel.infrastructure.database.migrations._commands.db_config`
puts what it needs on ``config.attributes``: the target metadata (the
application's plus keel's) and, when the caller gave one, the URL. Runs on
asyncio with a plain engine (no statement timeout cutting a migration short).
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from keel.infrastructure.database.migrations import database_settings, render_item

config = context.config
TARGET_METADATA = config.attributes["keel.target_metadata"]


def _configure(**options: Any) -> None:
    context.configure(target_metadata=TARGET_METADATA, render_item=render_item, compare_type=True, **options)


def _run(connection: Connection) -> None:
    # SQLite can ALTER almost nothing in place: batch mode rebuilds the table.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(database_settings(config).effective_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    settings = database_settings(config)
    _configure(
        url=settings.url.render_as_string(hide_password=True),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=settings.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
