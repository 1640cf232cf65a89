"""Rule extractors, value normalisation and the offset-preserving text clean-up."""

from __future__ import annotations

import pytest

from gpt2_agent.nlu.extractors import EntityExtractor, Patterns
from gpt2_agent.nlu.parser import NluParser, merge_entities
from gpt2_agent.nlu.predictor import ModelSpan, decode_bio
from gpt2_agent.nlu.text import detect_lang, normalize
from gpt2_agent.nlu.values import normalize_currency, normalize_value, parse_amount


@pytest.mark.parametrize(
    ("raw", "value"),
    [("4500", "4500.00"), ("4,500", "4500.00"), ("1288.5", "1288.50"), ("1288.5元", "1288.50"),
     ("¥1,288.50", "1288.50"), ("$20", "20.00"), ("1.2万", "12000.00"), ("5k", "5000.00"),
     ("三千五", "3500.00"), ("两万", "20000.00"), ("一千二百", "1200.00"), ("十五", "15.00"),
     ("４５００", "4500.00"), ("0", None), ("pay", None), ("1e9999", None)],
)  # fmt: skip
def test_amounts(raw: str, value: str | None) -> None:
    assert normalize_value("amount", raw) == value


def test_other_values() -> None:
    assert normalize_currency("块") == "CNY" and normalize_currency("US$") == "USD"
    assert normalize_currency("ＵＳＤ") == "USD" and normalize_currency("bananas") is None
    assert normalize_value("order_no", "#６６１２０") == "66120"
    assert normalize_value("order_no", "12 34") is None
    assert normalize_value("email", "Li.Wei@Example.COM") == "Li.Wei@example.com"
    assert normalize_value("email", "not-an-email") is None
    assert parse_amount("999999999999999") is None


def test_normalize_keeps_offsets() -> None:
    for text in ("订单６６１２０，金额４，５００元", "tab\there\x00nul\u200bzw", "🙂 emoji ＠ｘ．ｃｏｍ", ""):
        assert len(normalize(text)) == len(text)
    assert normalize("６６１２０　ＵＳＤ") == "66120 USD"
    assert normalize("a\tb\x00c\u200bd") == "a b c d"


def test_language() -> None:
    assert detect_lang("帮我 audit 一下") == "zh"
    assert detect_lang("please audit order 12345") == "en"
    assert detect_lang("66120") is None and detect_lang("🙂👍") is None


def _extract(text: str) -> list[tuple[str, str, str]]:
    norm = normalize(text)
    return [(c.entity, text[c.start : c.end], c.value) for c in EntityExtractor().extract(norm)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("帮我审核一下订单 66120", [("order_no", "66120", "66120")]),
        ("pay order 12345, 1000 yuan",
         [("order_no", "12345", "12345"), ("amount", "1000", "1000.00"), ("currency", "yuan", "CNY")]),
        ("订单６６１２０，金额 4,500 元",
         [("order_no", "６６１２０", "66120"), ("amount", "4,500", "4500.00"), ("currency", "元", "CNY")]),
        ("charge $89.90 for #45012",
         [("currency", "$", "USD"), ("amount", "89.90", "89.90"), ("order_no", "45012", "45012")]),
        ("三千五百块 付给订单 55555",
         [("amount", "三千五百", "3500.00"), ("currency", "块", "CNY"), ("order_no", "55555", "55555")]),
        ("email Tom.Lee@Example.com", [("email", "Tom.Lee@Example.com", "Tom.Lee@example.com")]),
        ("上传发票_66120.pdf", [("file_name", "发票_66120.pdf", "发票_66120.pdf")]),
        ("把 报价单.xlsx 上传到订单 30303",
         [("file_name", "报价单.xlsx", "报价单.xlsx"), ("order_no", "30303", "30303")]),
        ("cancel task 42", [("task_id", "42", "42")]),
        ("撤回工单 151", [("task_id", "151", "151")]),
        ("12345 号订单审核一下", [("order_no", "12345", "12345")]),
        ("1.2万 for order 99887", [("amount", "1.2万", "12000.00"), ("order_no", "99887", "99887")]),
    ],
)  # fmt: skip
def test_extractors(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [e for e in _extract(text) if e[0] != "number"] == expected


def test_user_regexes_lookups_and_synonyms() -> None:
    patterns = Patterns(regexes={"task_id": [r"(?<=T-)\d+"]}, lookups={"currency": ["bitcoin"]},
                        synonyms={"BTC": ["bitcoin"]})  # fmt: skip
    found = EntityExtractor(patterns).extract("status of T-77 in bitcoin")
    assert [(c.entity, c.value) for c in found] == [("task_id", "77"), ("currency", "BTC")]


def test_bare_numbers_take_the_models_type_or_the_expected_slot() -> None:
    extractor = EntityExtractor()
    text = "pay 88231"
    candidates = extractor.extract(text)
    assert [c.entity for c in candidates] == ["number"]
    assert merge_entities(text, candidates, [], extractor) == []  # nobody says what it is
    tagged = merge_entities(text, candidates, [ModelSpan("order_no", 4, 9, 0.8)], extractor)
    assert [(e["entity"], e["value"], e["extractor"]) for e in tagged] == [
        ("order_no", "88231", "model+regex")
    ]
    answer = merge_entities("4500", extractor.extract("4500"), [ModelSpan("order_no", 0, 4, 0.9)], extractor,
                            expected="amount")  # fmt: skip
    assert [(e["entity"], e["value"]) for e in answer] == [("amount", "4500.00")]


def test_model_spans_are_kept_only_when_they_are_valid_values() -> None:
    extractor = EntityExtractor()
    text = "付三千五 for the pay"
    spans = [
        ModelSpan("amount", 1, 4, 0.9),
        ModelSpan("amount", 14, 17, 0.9),
        ModelSpan("file_name", 9, 12, 0.9),
    ]
    out = merge_entities(text, extractor.extract(text), spans, extractor)
    assert [(e["entity"], e["value"], e["start"], e["end"]) for e in out] == [("amount", "3500.00", 1, 4)]


def test_decode_bio_trims_spaces_and_averages_confidence() -> None:
    text = "pay order 12345 now"
    tags = ["O", "O", "B-order_no", "I-order_no", "O"]
    offsets = [(0, 3), (3, 9), (9, 13), (13, 15), (15, 19)]
    [span] = decode_bio(tags, [0.9, 0.9, 0.8, 0.6, 0.9], offsets, text)
    assert (span.entity, text[span.start : span.end]) == ("order_no", "12345")
    assert span.confidence == pytest.approx(0.8)  # a word counts once: its first piece


def test_parser_without_a_model_and_hostile_text() -> None:
    parser = NluParser(None)
    out = parser.parse("🙂 订单\x00６６１２０ \u202e ok")
    assert out["intent"] == {"name": "out_of_scope", "confidence": 0.0}
    assert [(e["entity"], e["value"], out["text"][e["start"] : e["end"]]) for e in out["entities"]] == [
        ("order_no", "66120", "６６１２０")
    ]
