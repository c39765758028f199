"""Commands: what callers ask the allocation service to do.

Frozen pydantic models, so a malformed payload fails as it is parsed, with
every field error at once (``keel.ValidationError``, HTTP 422). References
and skus are 1 to 255 characters (the columns' size) and not blank;
quantities are JSON integers (strict: ``true`` is not 1, ``"3"`` is not 3).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, Field

from keel import Command

#: The longest reference, sku or order id: the columns are String(255).
MAX_REFERENCE_LENGTH = 255


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank (whitespace only)")
    return value


Reference = Annotated[str, Field(min_length=1, max_length=MAX_REFERENCE_LENGTH), AfterValidator(_not_blank)]
# strict: pydantic would otherwise take True as 1 and "3" or 3.0 as 3.
Quantity = Annotated[int, Field(strict=True)]


class CreateBatch(Command):
    """Stock is on its way (``eta``) or in the warehouse (``eta`` of None)."""

    ref: Reference
    sku: Reference
    qty: Annotated[Quantity, Field(gt=0)]
    eta: date | None = None


class Allocate(Command):
    """Reserve stock of ``sku`` for one line of an order."""

    orderid: Reference
    sku: Reference
    qty: Annotated[Quantity, Field(gt=0)]


class ChangeBatchQuantity(Command):
    """A batch turned out bigger or smaller than announced."""

    ref: Reference
    qty: Annotated[Quantity, Field(ge=0)]
