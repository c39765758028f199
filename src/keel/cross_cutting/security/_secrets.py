"""Secret providers: the environment and files (Docker and Kubernetes mount secrets as files).

Both implement :class:`keel.domain.ports.SecretProvider` and hand out
``SecretStr`` values, whose ``repr``/``str`` show a mask, so a secret that
ends up in a log line, a traceback or an error shows no value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from keel.cross_cutting.error import ConfigurationError, SecretUnavailableError
from keel.domain.ports import SecretProvider

#: A secret name that is safe as a file name (no separators, no leading dot: no path traversal).
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


class EnvironmentSecretProvider:
    """Secrets from environment variables: ``get("DB_PASSWORD")`` reads ``<prefix>DB_PASSWORD``."""

    def __init__(self, environ: Mapping[str, str] | None = None, *, prefix: str = "") -> None:
        self._environ = environ if environ is not None else os.environ
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"EnvironmentSecretProvider(prefix={self.prefix!r})"

    def get(self, name: str) -> SecretStr | None:
        """The variable's value, or ``None`` when it is unset."""
        value = self._environ.get(self.prefix + name)
        return SecretStr(value) if value is not None else None


class FileSecretProvider:
    """Secrets from files in one directory (default ``/run/secrets``, where Docker mounts them).

    ``get(name)`` reads ``<directory>/<name>``, or ``<directory>/<name lowercased>``
    (Docker secret names are usually lowercase, settings variables upper),
    without one trailing newline (``echo`` adds one). Names with a path
    separator or a leading dot are refused.
    """

    def __init__(self, directory: str | os.PathLike[str] = "/run/secrets") -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileSecretProvider({str(self.directory)!r})"

    def get(self, name: str) -> SecretStr | None:
        """The file's text, or ``None`` when there is no such file."""
        if not _SAFE_NAME.fullmatch(name):
            raise ConfigurationError(f"{name!r} is not a valid secret file name", secret=name)
        for candidate in dict.fromkeys((name, name.lower())):
            path = self.directory / candidate
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            except OSError as exc:  # a directory, a permission refused
                raise SecretUnavailableError(
                    f"secret {name!r} could not be read from {self.directory} ({type(exc).__name__})", secret=name
                ) from None
            return SecretStr(text.removesuffix("\n").removesuffix("\r"))
        return None


def require_secret(provider: SecretProvider, name: str) -> SecretStr:
    """``provider.get(name)``, or a :class:`keel.ConfigurationError` naming the missing secret."""
    value = provider.get(name)
    if value is None:
        raise ConfigurationError(f"secret {name!r} is not set ({provider!r})", secret=name)
    return value
