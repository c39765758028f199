"""Which database an Alembic environment migrates: one rule for keel's env.py and an application's.

Alembic reads the URL from ``sqlalchemy.url`` in ``alembic.ini``, and
``alembic init`` writes a placeholder there (``driver://user:pass@localhost/dbname``).
An application configured by ``KEEL_DATABASE__URL`` must not have that
placeholder, or a stale URL in the file, win over its settings; and a bad URL
in the file must be reported as the file's, not as ``KEEL_DATABASE__URL``'s.
"""

from __future__ import annotations

from alembic.config import Config

from keel.config import DatabaseSettings, KeelSettings
from keel.cross_cutting.error import ConfigurationError

#: Where :func:`~keel.infrastructure.database.migrations.alembic_config` records a URL given by its caller.
EXPLICIT_URL = "keel.database_url"
#: The drivername of the URL that ``alembic init`` writes as an example.
_PLACEHOLDER_DRIVER = "driver://"


def database_settings(config: Config) -> DatabaseSettings:
    """The database settings an env.py migrates, first match wins.

    1. a URL given to keel's ``upgrade(url=...)`` / ``alembic_config(url=...)``;
    2. ``KEEL_DATABASE__URL`` (environment or ``.env`` file), like the application;
    3. ``sqlalchemy.url`` in ``alembic.ini``, unless it is ``alembic init``'s placeholder;
    4. keel's default (``./keel.db``).

    The other ``KEEL_DATABASE__*`` settings (such as the password) apply in
    cases 2 to 4.
    """
    explicit = config.attributes.get(EXPLICIT_URL)
    if explicit is not None:
        return DatabaseSettings(url=explicit)
    settings = KeelSettings().database
    if "url" in settings.model_fields_set:
        return settings
    in_file = config.get_main_option("sqlalchemy.url")
    if not in_file or in_file.startswith(_PLACEHOLDER_DRIVER):
        return settings
    try:
        url = DatabaseSettings(url=in_file).url
    except ConfigurationError as exc:
        reasons = "; ".join(str(error["msg"]) for error in exc.details.get("errors", []))
        source = config.config_file_name or "the Alembic configuration"
        raise ConfigurationError(
            f"sqlalchemy.url in {source} is not usable ({reasons}): fix it, or delete the line and set "
            "KEEL_DATABASE__URL, which keel's migrations read like the application does",
            setting="sqlalchemy.url",
            config_path=str(source),
        ) from None
    return settings.model_copy(update={"url": url})
