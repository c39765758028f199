"""The secret-provider port: where settings marked secret come from."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr


class SecretProvider(Protocol):
    """Where secrets come from: the environment, files (``/run/secrets``), a secret manager.

    Synchronous on purpose: settings are read synchronously, once, at start-up.
    Implementations: ``keel.security.EnvironmentSecretProvider``,
    ``FileSecretProvider`` and ``GoogleSecretManagerProvider``.
    """

    def get(self, name: str) -> SecretStr | None:
        """The secret called ``name``, or ``None`` when the provider holds none by that name.

        A store that cannot be read raises :class:`keel.SecretUnavailableError`.
        """
