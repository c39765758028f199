"""Integrations with other frameworks (``keel.ext.fastapi``), each behind its own extra."""
