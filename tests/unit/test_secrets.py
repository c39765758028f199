"""Secret providers (environment, files, Google Secret Manager on a fake client) and settings fed from them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as google_exceptions
from google.cloud import secretmanager
from pydantic import SecretStr

from keel import ConfigurationError, SecretUnavailableError
from keel.config import KeelSettings, load_settings, secret_values
from keel.domain.ports import SecretProvider
from keel.security import (
    EnvironmentSecretProvider,
    FileSecretProvider,
    GoogleSecretManagerProvider,
    require_secret,
)

PASSWORD = "pa55-w0rd-Zq"


class FakeSecretManagerClient:
    """The part of ``SecretManagerServiceClient`` the provider uses, answering from a dict."""

    def __init__(self, secrets: dict[str, bytes], failure: Exception | None = None) -> None:
        self.secrets = secrets
        self.failure = failure
        self.requests: list[dict[str, Any]] = []

    def access_secret_version(
        self, request: dict[str, Any] | None = None, **kwargs: Any
    ) -> secretmanager.AccessSecretVersionResponse:
        assert request is not None
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure
        name = request["name"]
        if name not in self.secrets:
            raise google_exceptions.NotFound(f"Secret [{name}] not found or has no versions.")  # type: ignore[no-untyped-call]
        return secretmanager.AccessSecretVersionResponse(
            name=name, payload=secretmanager.SecretPayload(data=self.secrets[name])
        )


def test_the_environment_provider_reads_variables_with_its_prefix() -> None:
    """get(name) reads prefix+name; an unset variable is None."""
    provider: SecretProvider = EnvironmentSecretProvider({"APP_DB": PASSWORD}, prefix="APP_")
    value = provider.get("DB")
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == PASSWORD
    assert provider.get("OTHER") is None
    assert PASSWORD not in repr(value) + str(value) + repr(provider)


def test_the_file_provider_reads_one_file_per_secret(tmp_path: Path) -> None:
    """/run/secrets style: the file's text without its trailing newline; the lowercase name as a fallback."""
    (tmp_path / "db_password").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "KEEL_X").write_text("exact", encoding="utf-8")
    provider = FileSecretProvider(tmp_path)
    assert provider.get("db_password") == SecretStr(PASSWORD)
    assert provider.get("DB_PASSWORD") == SecretStr(PASSWORD)
    assert provider.get("KEEL_X") == SecretStr("exact")
    assert provider.get("missing") is None


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".hidden", ""])
def test_the_file_provider_refuses_names_that_leave_its_directory(tmp_path: Path, name: str) -> None:
    """No path separators, no leading dot."""
    with pytest.raises(ConfigurationError):
        FileSecretProvider(tmp_path).get(name)


def test_an_unreadable_secret_file_is_secret_unavailable(tmp_path: Path) -> None:
    """A directory where the file should be: SecretUnavailableError naming the secret."""
    (tmp_path / "token").mkdir()
    with pytest.raises(SecretUnavailableError) as caught:
        FileSecretProvider(tmp_path).get("token")
    assert "'token'" in caught.value.message


def test_google_secret_manager_reads_the_latest_version_through_the_clients_interface() -> None:
    """access_secret_version(request={"name": ...}) with the project's resource name; payload.data decoded."""
    client = FakeSecretManagerClient({"projects/acme/secrets/db-password/versions/latest": PASSWORD.encode()})
    provider = GoogleSecretManagerProvider("acme", client=client)
    assert provider.get("db-password") == SecretStr(PASSWORD)
    assert client.requests == [{"name": "projects/acme/secrets/db-password/versions/latest"}]
    assert provider.get("absent") is None
    pinned = "projects/acme/secrets/db-password/versions/latest"
    assert provider.get(pinned) == SecretStr(PASSWORD)
    assert PASSWORD not in repr(provider)


def test_google_secret_manager_failures_are_secret_unavailable() -> None:
    """Access refused (or any other API error) is SecretUnavailableError; a bad secret id is refused first."""
    denied = FakeSecretManagerClient({}, failure=google_exceptions.PermissionDenied("no access"))  # type: ignore[no-untyped-call]
    with pytest.raises(SecretUnavailableError) as caught:
        GoogleSecretManagerProvider("acme", client=denied).get("db-password")
    assert caught.value.code == "secret_unavailable"
    assert "PermissionDenied" in caught.value.message
    with pytest.raises(ConfigurationError):
        GoogleSecretManagerProvider("acme", client=denied).get("bad name!")
    with pytest.raises(ConfigurationError):
        GoogleSecretManagerProvider("", client=denied)


def test_require_secret_names_a_missing_secret() -> None:
    """require_secret raises ConfigurationError for an absent secret and returns a present one."""
    provider = EnvironmentSecretProvider({"TOKEN": "t"})
    assert require_secret(provider, "TOKEN").get_secret_value() == "t"
    with pytest.raises(ConfigurationError, match="'NOPE'"):
        require_secret(provider, "NOPE")


def test_settings_take_their_secrets_from_a_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every SecretStr setting is looked up by its variable (or a mapped name); the rest still comes from the env."""
    monkeypatch.setenv("KEEL_DATABASE__URL", "postgresql://app@db.internal/app")
    (tmp_path / "db-password").write_text(PASSWORD, encoding="utf-8")
    (tmp_path / "KEEL_REPOSITORY__CURSOR_SECRET").write_text("cursor-key", encoding="utf-8")
    settings = load_settings(
        secrets=FileSecretProvider(tmp_path),
        secret_names={"KEEL_DATABASE__PASSWORD": "db-password"},
        _env_file=None,
    )
    assert settings.database.url.host == "db.internal"
    assert settings.database.password == SecretStr(PASSWORD)
    assert settings.database.effective_url.password == PASSWORD
    assert settings.repository.cursor_secret == SecretStr("cursor-key")
    assert PASSWORD not in repr(settings) + str(settings) + settings.model_dump_json()


def test_overrides_win_over_the_provider_and_absent_secrets_leave_defaults() -> None:
    """A value passed in wins; a whole section passed in is left alone; nothing found leaves the default."""
    provider = EnvironmentSecretProvider({"KEEL_DATABASE__PASSWORD": "from-provider"})
    values = secret_values(KeelSettings, provider, overrides={"database": {"password": "given"}})
    assert values == {"database": {"password": "given"}}
    assert secret_values(KeelSettings, EnvironmentSecretProvider({})) == {}
    values = secret_values(KeelSettings, provider)
    assert values["database"]["password"].get_secret_value() == "from-provider"


def test_secrets_never_reach_log_records(caplog: pytest.LogCaptureFixture) -> None:
    """Logging a SecretStr, or settings holding one, shows the mask."""
    settings = load_settings(secrets=EnvironmentSecretProvider({"KEEL_DATABASE__PASSWORD": PASSWORD}), _env_file=None)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("keel.test").info("settings %s %r %s", settings, settings, settings.database.password)
    assert PASSWORD not in caplog.text
