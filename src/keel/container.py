"""The dependency-injector container that wires keel (filled in by the message-bus work)."""

from __future__ import annotations
