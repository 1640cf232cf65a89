"""Record-to-text templates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpt2_agent.training.data import (
    MissingFieldError,
    TemplateError,
    TextTemplate,
    serialize,
    template_fields,
)


def test_renders_fields_with_format_specs() -> None:
    template = TextTemplate("订单号: {order_no} 金额: {amount:.2f} {currency} 备注: {notes!r}")
    record = {"order_no": "66120", "amount": Decimal("12.5"), "currency": "CNY", "notes": "急", "extra": 1}
    assert template.render(record) == "订单号: 66120 金额: 12.50 CNY 备注: '急'"
    assert template.fields == ("order_no", "amount", "currency", "notes")


def test_missing_field_is_named() -> None:
    with pytest.raises(MissingFieldError, match="'amount'") as info:
        serialize({"order_no": "1"}, "{order_no} {amount}")
    assert info.value.field == "amount"
    assert "order_no" in str(info.value)  # lists what the record has


def test_none_renders_as_configured_text_under_any_spec() -> None:
    template = TextTemplate("{a:.2f}|{b}", none_as="-")
    assert template.render({"a": None, "b": None}) == "-|-"


def test_attribute_and_index_access() -> None:
    assert template_fields("{items[0]} {when.year} {items[1]}") == ("items", "when")
    assert serialize({"items": ["x", "y"]}, "{items[1]}") == "y"


@pytest.mark.parametrize("template", ["{}", "{0}", "{unclosed", "}{"])
def test_bad_templates_are_rejected(template: str) -> None:
    with pytest.raises(TemplateError):
        TextTemplate(template)


def test_value_that_does_not_fit_the_spec() -> None:
    with pytest.raises(TemplateError, match="cannot render"):
        serialize({"amount": "twelve"}, "{amount:.2f}")
