"""Security: the acting principal, permissions, automatic audit, secrets and bearer tokens.

The public path of these names is :mod:`keel.security`.
"""

from __future__ import annotations

from keel.cross_cutting.security._audit import AuditEntry as AuditEntry
from keel.cross_cutting.security._audit import AuditLog as AuditLog
from keel.cross_cutting.security._audit import AuditMiddleware as AuditMiddleware
from keel.cross_cutting.security._audit import pending_audit_entry as pending_audit_entry
from keel.cross_cutting.security._correlation import correlate as correlate
from keel.cross_cutting.security._gcp_secrets import GoogleSecretManagerProvider as GoogleSecretManagerProvider
from keel.cross_cutting.security._jwt import JwtAuthenticator as JwtAuthenticator
from keel.cross_cutting.security._principal import Principal as Principal
from keel.cross_cutting.security._principal import as_principal as as_principal
from keel.cross_cutting.security._principal import current_principal as current_principal
from keel.cross_cutting.security._redact import MASK as MASK
from keel.cross_cutting.security._redact import redacted as redacted
from keel.cross_cutting.security._requires import authorize as authorize
from keel.cross_cutting.security._requires import check_permissions as check_permissions
from keel.cross_cutting.security._requires import required_permissions as required_permissions
from keel.cross_cutting.security._requires import requires as requires
from keel.cross_cutting.security._secrets import EnvironmentSecretProvider as EnvironmentSecretProvider
from keel.cross_cutting.security._secrets import FileSecretProvider as FileSecretProvider
from keel.cross_cutting.security._secrets import require_secret as require_secret
