"""Turn records into text with a Python format-style template.

    >>> TextTemplate("订单号: {order_no} 金额: {amount:.2f}").render({"order_no": "66120", "amount": 12.5})
    '订单号: 66120 金额: 12.50'

Fields are named (``{name}``, ``{name.attr}``, ``{name[0]}``, with any conversion and format
spec); a field the record lacks raises :class:`MissingFieldError` naming it. ``None`` values
render as ``none_as`` whatever their format spec, since a missing value has no number format.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from gpt2_agent.training.data.errors import MissingFieldError, TemplateError

_FORMATTER = string.Formatter()


class _Blank:
    """Stands in for ``None``: formats as the configured text under any spec."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __format__(self, spec: str) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def template_fields(template: str) -> tuple[str, ...]:
    """The distinct top-level field names of ``template``, in order of first use."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template {template!r}: {exc}") from exc
    names: list[str] = []
    for _literal, field, _spec, _conversion in parsed:
        if field is None:
            continue
        top = re.split(r"[.\[]", field, maxsplit=1)[0]
        if not top or top.isdigit():
            raise TemplateError(f"template fields must be named, got {{{field}}} in {template!r}")
        if top not in names:
            names.append(top)
    return tuple(names)


class TextTemplate:
    """A compiled record-to-text template.

    :param template: format string with named fields, e.g. ``"订单号: {order_no} 金额: {amount}"``.
    :param none_as: text for fields whose value is ``None``.
    """

    def __init__(self, template: str, *, none_as: str = "") -> None:
        self.template = template
        self.none_as = none_as
        self.fields = template_fields(template)

    def render(self, record: Mapping[str, Any]) -> str:
        """The text of one record."""
        values: dict[str, Any] = {}
        for name in self.fields:
            if name not in record:
                raise MissingFieldError(name, available=sorted(record))
            value = record[name]
            values[name] = _Blank(self.none_as) if value is None else value
        try:
            return self.template.format_map(values)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            raise TemplateError(f"cannot render {self.template!r}: {exc}") from exc

    __call__ = render

    def __repr__(self) -> str:
        return f"TextTemplate({self.template!r})"


def serialize(record: Mapping[str, Any], template: str | TextTemplate, *, none_as: str = "") -> str:
    """Render one record with ``template`` (a string is compiled on the fly)."""
    compiled = template if isinstance(template, TextTemplate) else TextTemplate(template, none_as=none_as)
    return compiled.render(record)


__all__ = ["TextTemplate", "serialize", "template_fields"]
