"""Projections for worker processes started by the tests (``KEEL_EVENT_STORE__PROJECTIONS`` names this module)."""

from __future__ import annotations

from tests.contract.projection_models import LedgerProjection

PROJECTIONS = [LedgerProjection()]
