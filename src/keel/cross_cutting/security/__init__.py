"""Security: the acting principal (and, with the security issue, permissions and audit).

The public path of these names is :mod:`keel.security`.
"""

from __future__ import annotations

from keel.cross_cutting.security._principal import Principal as Principal
from keel.cross_cutting.security._principal import as_principal as as_principal
from keel.cross_cutting.security._principal import current_principal as current_principal
