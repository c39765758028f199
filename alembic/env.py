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

import importlib
from logging.config import fileConfig
from pathlib import Path

from alembic import context

from keel.infrastructure.database.migrations import run_migrations, target_metadata
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
run_migrations(target_metadata(Base.metadata))
