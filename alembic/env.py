"""Alembic environment for keel's examples and tests, run on asyncio.

The URL comes from keel's ``migrations.upgrade(url)`` when a caller gives
one, otherwise from ``KEEL_DATABASE__URL`` through
:class:`keel.config.KeelSettings` (see
:func:`keel.infrastructure.database.migrations.database_settings`). Autogenerate compares against
``keel.orm.Base.metadata`` (filled by importing every ``examples/*/orm.py``)
plus ``keel.orm.keel_metadata`` (keel's own tables, migrated by the ``keel``
branch), so neither side's tables look like drift to the other.
"""

from __future__ import annotations

import asyncio
import importlib
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from keel.infrastructure.database.migrations import database_settings, render_item, target_metadata
from keel.orm import Base

ROOT = Path(__file__).resolve().parents[1]

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    # Don't silence the loggers of a program that runs migrations in-process.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def import_example_models() -> list[str]:
    """Import every ``examples/<name>/orm.py`` (sorted, so runs are reproducible)."""
    names = [f"examples.{path.parent.name}.orm" for path in sorted((ROOT / "examples").glob("*/orm.py"))]
    for name in names:
        importlib.import_module(name)
    return names


import_example_models()
TARGET_METADATA = target_metadata(Base.metadata)


def configure(**options: object) -> None:
    context.configure(
        target_metadata=TARGET_METADATA,
        render_item=render_item,
        compare_type=True,
        **options,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade heads --sql``)."""
    settings = database_settings(config)
    configure(
        url=settings.url.render_as_string(hide_password=True),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=settings.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    # SQLite can ALTER almost nothing in place: batch mode rebuilds the table.
    configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    # A plain engine, not keel's: no statement_timeout cutting a long
    # migration short, and no pooled connections left behind.
    engine = create_async_engine(database_settings(config).effective_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
