"""The body of an Alembic ``env.py`` on asyncio: keel's, the examples' and an application's.

Alembic runs ``env.py`` with its ``context`` set up; :func:`run_migrations`
does what ``alembic init -t async`` writes there, with keel's choices: the
database from :func:`database_settings`, :func:`render_item` for custom column
types, batch mode on SQLite, and a plain engine without a pool (no
``statement_timeout`` cutting a long migration short, nothing left connected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from alembic import context
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from keel.infrastructure.database.migrations._settings import database_settings


def run_migrations(target_metadata: MetaData | Sequence[MetaData] | None, **options: Any) -> None:
    """Run the migrations of the ``env.py`` that calls this: online on asyncio, or offline for ``--sql``.

    ``target_metadata`` is what autogenerate compares with (pass
    ``target_metadata(Base.metadata)`` so keel's tables are in it);
    ``options`` go to ``context.configure`` as they are (``include_object``,
    ``process_revision_directives``, ``version_table_schema``, ...) and win
    over keel's defaults (``render_item``, ``compare_type=True``, batch mode on
    SQLite).
    """
    from keel.infrastructure.database.migrations import render_item  # the package imports this module

    config = context.config
    settings = database_settings(config)
    defaults: dict[str, Any] = {
        "target_metadata": target_metadata,
        "render_item": render_item,
        "compare_type": True,
        # SQLite can ALTER almost nothing in place: batch mode rebuilds the table.
        "render_as_batch": settings.is_sqlite,
    }
    configured = {**defaults, **options}
    if context.is_offline_mode():
        context.configure(
            url=settings.url.render_as_string(hide_password=True),
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            **configured,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, **configured)
        with context.begin_transaction():
            context.run_migrations()

    async def online() -> None:
        engine = create_async_engine(settings.effective_url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(online())
