"""Errors of the data layer. Foreign errors (SQLAlchemy, pyarrow, csv, json) are translated here.

DataError
├── SourceSpecError      (a source mapping that does not describe a usable source)
├── UnknownColumnError   (a query, column list or template names a column the data lacks)
├── MissingFieldError    (a template field absent from a record)
├── TemplateError        (a template that cannot be parsed, or a value its format spec rejects)
├── SourceReadError      (the source exists but reading it failed: bad SQL, bad JSON line...)
└── OrderNotFoundError   (no order with that number in the warehouse)
"""

from __future__ import annotations


class DataError(Exception):
    """Base of every error the data layer raises on purpose."""


class SourceSpecError(DataError, ValueError):
    """The source description is wrong (unknown kind, missing or unknown key)."""


class UnknownColumnError(DataError, KeyError):
    """A column that the source does not have was asked for."""

    def __init__(self, column: str, *, source: str, available: list[str] | None = None) -> None:
        hint = f"; available: {', '.join(available)}" if available else ""
        self.column = column
        self.source = source
        self.available = list(available or [])
        self.message = f"unknown column {column!r} in {source}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.message


class MissingFieldError(DataError, KeyError):
    """A template names a field that the record does not have."""

    def __init__(self, field: str, *, available: list[str] | None = None) -> None:
        hint = f"; record has: {', '.join(available)}" if available is not None else ""
        self.field = field
        self.message = f"template field {field!r} is missing from the record{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class TemplateError(DataError, ValueError):
    """A text template is malformed, or a value does not fit its format spec."""


class SourceReadError(DataError):
    """Reading the source failed for a reason other than an unknown column."""


class OrderNotFoundError(DataError, LookupError):
    """The warehouse has no order with this number."""

    def __init__(self, order_no: str) -> None:
        self.order_no = order_no
        super().__init__(f"order {order_no!r} not found")


__all__ = [
    "DataError",
    "MissingFieldError",
    "OrderNotFoundError",
    "SourceReadError",
    "SourceSpecError",
    "TemplateError",
    "UnknownColumnError",
]
