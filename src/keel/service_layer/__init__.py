"""The service layer: unit-of-work port, message bus and handler registry. Imports only the domain."""

from __future__ import annotations

from keel.service_layer.commands import CommandAlreadyHandledError, current_command
from keel.service_layer.errors import BusConfigurationError
from keel.service_layer.messagebus import BusStats, MessageBus
from keel.service_layer.middleware import CallNext, HandlerCall, Middleware
from keel.service_layer.participants import CommitParticipant, Participant
from keel.service_layer.registry import HandlerRegistry
from keel.service_layer.retry import RetryPolicy
from keel.service_layer.unit_of_work import AbstractUnitOfWork

__all__ = [
    "AbstractUnitOfWork",
    "BusConfigurationError",
    "BusStats",
    "CallNext",
    "CommandAlreadyHandledError",
    "CommitParticipant",
    "HandlerCall",
    "HandlerRegistry",
    "MessageBus",
    "Middleware",
    "Participant",
    "RetryPolicy",
    "current_command",
]
