"""Generic repositories."""

from __future__ import annotations

from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository

__all__ = ["SqlAlchemyRepository"]
