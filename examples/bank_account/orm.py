"""The bank example's read model: one balance row per account, written by the balance projection.

Migrated by ``alembic/versions/bank_0001_balances.py`` (branch ``bank``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from keel.orm import Base

balances = Table(
    "bank_balances",
    Base.metadata,
    Column("account_id", String(100), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("balance", Integer(), nullable=False),
    Column("movements", Integer(), nullable=False),
    #: The position of the last event applied to this row (for readers who want read-your-writes).
    Column("position", BigInteger(), nullable=False),
)
