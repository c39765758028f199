"""The transactional outbox and the inbox (idempotent consumers); public names in :mod:`keel.outbox`."""

from __future__ import annotations
