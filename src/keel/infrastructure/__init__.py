"""Adapters: SQLAlchemy database, repositories and unit of work (later: event store, outbox, event bus)."""
