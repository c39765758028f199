"""Errors of the message bus's own wiring."""

from __future__ import annotations

from keel.domain.errors import ConfigurationError


class BusConfigurationError(ConfigurationError):
    """The message bus is wired wrongly: a missing handler or dependency.

    Raised when the bus is built (so a deployment fails at start-up, not at
    its first message), and by ``handle`` for a command type nobody
    registered. The message names the handler, command or dependency.
    """

    code = "bus_configuration_error"
