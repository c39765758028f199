"""Test support for applications built on keel: in-memory twins and pytest fixtures."""

from __future__ import annotations

__all__: list[str] = []
