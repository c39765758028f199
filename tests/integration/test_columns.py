"""The portable column types take each backend's native form."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract import keys_models  # noqa: F401  (registers the keys_ tables on Base.metadata)


async def test_json_is_jsonb_on_postgresql_and_json_on_sqlite_and_keys_are_native(engine: AsyncEngine) -> None:
    """PostgreSQL gets JSONB, uuid and bigint columns; SQLite gets JSON, CHAR(32) and INTEGER."""
    async with engine.connect() as conn:
        tickets = await conn.run_sync(lambda sync: inspect(sync).get_columns("keys_tickets"))
        readings = await conn.run_sync(lambda sync: inspect(sync).get_columns("keys_readings"))
    ticket_types = {c["name"]: str(c["type"]).upper() for c in tickets}
    reading_types = {c["name"]: str(c["type"]).upper() for c in readings}
    if engine.dialect.name == "postgresql":
        assert (ticket_types["labels"], ticket_types["id"], reading_types["id"]) == ("JSONB", "UUID", "BIGINT")
    else:
        assert (ticket_types["labels"], ticket_types["id"], reading_types["id"]) == ("JSON", "CHAR(32)", "INTEGER")
