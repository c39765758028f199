"""Commands: what callers ask the allocation service to do.

Frozen pydantic models, so a malformed payload fails as it is parsed, with
every field error at once (``keel.ValidationError``, HTTP 422).
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from keel.domain import Command

Reference = Field(min_length=1, max_length=255)


class CreateBatch(Command):
    """Stock is on its way (``eta``) or in the warehouse (``eta`` of None)."""

    ref: str = Reference
    sku: str = Reference
    qty: int = Field(gt=0)
    eta: date | None = None


class Allocate(Command):
    """Reserve stock of ``sku`` for one line of an order."""

    orderid: str = Reference
    sku: str = Reference
    qty: int = Field(gt=0)


class ChangeBatchQuantity(Command):
    """A batch turned out bigger or smaller than announced."""

    ref: str = Reference
    qty: int = Field(ge=0)
