"""Money as :class:`~decimal.Decimal`, end to end: parsing, validation and formatting.

Amounts travel as decimal strings (``"479.46"``) in task inputs and outputs. JSON numbers are
accepted too, but only through their shortest text (``479.46`` -> ``"479.46"``), never through
binary floating point. NaN, Infinity, negative or zero amounts, more than two decimal places and
more than 12 integer digits (the ``NUMERIC(14, 2)`` columns) are refused.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")


class InvalidAmount(ValueError):
    """An amount that is not a positive, finite, two-decimal number."""


def parse_amount(value: Any) -> Decimal:
    """``value`` as an exact, positive, two-decimal :class:`Decimal`; raises :class:`InvalidAmount`."""
    if isinstance(value, bool) or value is None:
        raise InvalidAmount(f"amount must be a decimal number, got {value!r}")
    if isinstance(value, float):
        value = repr(value)  # the shortest text that round-trips: 479.46, not 479.4599999...
    if isinstance(value, str):
        value = value.strip()
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidAmount(f"amount must be a decimal number, got {value!r}") from None
    if not amount.is_finite():
        raise InvalidAmount(f"amount must be finite, got {value!r}")
    if amount <= 0:
        raise InvalidAmount(f"amount must be positive, got {value!r}")
    if amount > MAX_AMOUNT:
        raise InvalidAmount(f"amount is too large: {value!r} (at most {MAX_AMOUNT})")
    if amount != amount.quantize(CENT, rounding=ROUND_DOWN):
        raise InvalidAmount(f"amount has more than two decimal places: {value!r}")
    return amount.quantize(CENT)


def to_decimal(value: Any) -> Decimal:
    """A money value read from a database (``Decimal``, or ``float`` from SQLite REAL) as cents."""
    if isinstance(value, Decimal):
        return value.quantize(CENT)
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(CENT)
    return Decimal(str(value)).quantize(CENT)


def format_amount(amount: Decimal) -> str:
    """``Decimal("5")`` -> ``"5.00"``."""
    return f"{amount.quantize(CENT):f}"


def _validate(value: Any) -> Decimal:
    # pydantic reports a ValueError raised here as a validation error naming the field.
    return parse_amount(value)


Amount = Annotated[
    Decimal,
    BeforeValidator(_validate),
    PlainSerializer(format_amount, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,2})?$", "examples": ["479.46"]}),
]
"""A positive two-decimal amount; serialized as a decimal string."""
