"""The allocation service's container: keel's, with this service's pieces."""

from __future__ import annotations

from dependency_injector import providers

from examples.allocation import orm  # noqa: F401  (maps the domain classes)
from examples.allocation.handlers import handlers
from examples.allocation.messages import routes
from examples.allocation.notifications import LogNotifications, Notifications
from examples.allocation.unit_of_work import AllocationUnitOfWork
from keel.container import KeelContainer


class AllocationContainer(KeelContainer[AllocationUnitOfWork]):
    unit_of_work_class = providers.Object(AllocationUnitOfWork)
    handlers = providers.Object(handlers)
    # Allocated leaves through the outbox to topic line_allocated (examples/allocation/messages.py).
    outbox_routes = providers.Object(routes)
    # Typed as the port, so a subclass may provide any adapter.
    notifications: providers.Provider[Notifications] = providers.Singleton(LogNotifications)
    handler_dependencies = providers.Dict(notifications=notifications)
