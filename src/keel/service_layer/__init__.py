"""The service layer: unit-of-work port, message bus and handler registry. Imports only the domain."""

from __future__ import annotations

# ``X as X``, not ``__all__``: re-exported for keel's own modules, not advertised; the public path of
# these names is ``keel`` (docs/architecture.md, "Public paths").
from keel.service_layer.commands import CommandAlreadyHandledError as CommandAlreadyHandledError
from keel.service_layer.commands import current_command as current_command
from keel.service_layer.errors import BusConfigurationError as BusConfigurationError
from keel.service_layer.messagebus import BusStats as BusStats
from keel.service_layer.messagebus import MessageBus as MessageBus
from keel.service_layer.middleware import CallNext as CallNext
from keel.service_layer.middleware import HandlerCall as HandlerCall
from keel.service_layer.middleware import Middleware as Middleware
from keel.service_layer.participants import CommitParticipant as CommitParticipant
from keel.service_layer.participants import Participant as Participant
from keel.service_layer.registry import HandlerRegistry as HandlerRegistry
from keel.service_layer.retry import RetryPolicy as RetryPolicy
from keel.service_layer.unit_of_work import AbstractUnitOfWork as AbstractUnitOfWork
