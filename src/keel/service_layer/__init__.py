"""The service layer: unit-of-work port and message bus. Imports only the domain."""

from __future__ import annotations

from keel.service_layer.unit_of_work import AbstractUnitOfWork

__all__ = ["AbstractUnitOfWork"]
