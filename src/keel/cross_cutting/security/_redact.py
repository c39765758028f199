"""Redaction: a message as JSON-ready data with its secret fields masked, for the audit log.

A field is secret when its value is a pydantic secret (``SecretStr``,
``SecretBytes``, ``Secret[...]``) or when it is declared with
``Field(json_schema_extra={"secret": True})`` (for a plain ``str`` that
must stay readable to the handler). Nested models, lists and mappings are
walked; the mask is the same one pydantic prints for ``SecretStr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

_SECRETS = (SecretStr, SecretBytes, Secret)

#: What a secret becomes (pydantic's own mask for ``SecretStr``).
MASK = "**********"


def is_secret(field: FieldInfo) -> bool:
    """Whether ``field`` is declared secret with ``json_schema_extra={"secret": True}``."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("secret") is True


def redacted(model: BaseModel) -> dict[str, Any]:
    """``model``'s fields as JSON-ready data, every secret one replaced by :data:`MASK`."""
    return {
        name: MASK if is_secret(field) else _value(getattr(model, name))
        for name, field in type(model).model_fields.items()
    }


def _value(value: Any) -> Any:
    if isinstance(value, _SECRETS):
        return MASK
    if isinstance(value, BaseModel):
        return redacted(value)
    if isinstance(value, Mapping):
        return {str(key): _value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(item) for item in value]
    return to_jsonable_python(value)
