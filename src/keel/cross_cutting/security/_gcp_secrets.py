"""``GoogleSecretManagerProvider``: secrets from Google Cloud Secret Manager (extra ``gcp-secrets``).

It calls the client's ``access_secret_version(request={"name": ...})`` and
reads ``response.payload.data``; any object with that method works, so tests
hand in a fake of the library's own client interface. A secret that does not
exist (``NotFound``) is ``None``; any other failure is a
:class:`keel.SecretUnavailableError` naming the secret, never the value.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

from keel.cross_cutting.error import ConfigurationError, SecretUnavailableError

#: Secret Manager's rule for secret ids.
_SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


class GoogleSecretManagerProvider:
    """Secrets of one Google Cloud project: ``get("db-password")`` reads its version ``version``.

    A full resource name (``projects/p/secrets/s/versions/3``) is used as it is.
    Without ``client``, a ``google.cloud.secretmanager.SecretManagerServiceClient``
    is built with the application-default credentials.
    """

    def __init__(self, project: str, *, client: Any | None = None, version: str = "latest") -> None:
        if not project:
            raise ConfigurationError("GoogleSecretManagerProvider needs a project id")
        self.project = project
        self.version = version
        self._client = client if client is not None else _default_client()

    def __repr__(self) -> str:
        return f"GoogleSecretManagerProvider(project={self.project!r}, version={self.version!r})"

    def get(self, name: str) -> SecretStr | None:
        """The secret's payload as text, or ``None`` when the project has no such secret (or version)."""
        resource = name if name.startswith("projects/") else self._resource(name)
        try:
            response = self._client.access_secret_version(request={"name": resource})
        except Exception as exc:
            if _not_found(exc):
                return None
            raise SecretUnavailableError(
                f"secret {name!r} could not be read from Google Secret Manager ({type(exc).__name__})", secret=name
            ) from exc
        data: bytes = response.payload.data
        return SecretStr(data.decode("utf-8"))

    def _resource(self, name: str) -> str:
        if not _SECRET_ID.fullmatch(name):
            raise ConfigurationError(f"{name!r} is not a valid Secret Manager secret id", secret=name)
        return f"projects/{self.project}/secrets/{name}/versions/{self.version}"


def _default_client() -> Any:
    try:
        from google.cloud import secretmanager  # the optional extra, imported only when used
    except ImportError:
        raise ConfigurationError(
            "GoogleSecretManagerProvider needs google-cloud-secret-manager: pip install 'keel-framework[gcp-secrets]'"
        ) from None
    return secretmanager.SecretManagerServiceClient()


def _not_found(exc: Exception) -> bool:
    try:
        from google.api_core.exceptions import NotFound  # the optional extra
    except ImportError:  # a fake client without the library: go by the status it carries
        return getattr(exc, "code", None) == 404
    return isinstance(exc, NotFound)
