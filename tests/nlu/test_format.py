"""The Rasa-style training data format: inline annotations, YAML and JSONL, and their round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2_agent.nlu.errors import TrainingDataError
from gpt2_agent.nlu.format import (
    Entity,
    NluExample,
    TrainingData,
    dump_jsonl,
    dump_yaml,
    load,
    parse_annotated,
    parse_jsonl,
    parse_yaml,
    to_annotated,
)
from gpt2_agent.nlu.generate import demo_data_path, eval_data, generate_demo_data

SAMPLE = """
version: "1"
nlu:
- intent: order_audit
  examples: |
    - 审核订单 [66120](order_no)
    - please audit order [12345](order_no)
- intent: order_payment
  examples: |
    - pay [1288.5](amount)[元]{"entity": "currency", "value": "CNY"} for [77410](order_no)
    - 付 [两千](amount:2000) 块
- lookup: currency
  examples: |
    - 人民币
    - USD
- regex: task_id
  examples: |
    - (?<=T-)\\d+
- synonym: CNY
  examples: |
    - 块
"""


def test_inline_annotations() -> None:
    text, ents = parse_annotated("审核订单 [66120](order_no)")
    assert text == "审核订单 66120"
    assert ents == (Entity("order_no", 5, 10),)
    text, ents = parse_annotated('pay [1288.5](amount)[元]{"entity": "currency", "value": "CNY"}')
    assert text == "pay 1288.5元"
    assert ents == (Entity("amount", 4, 10), Entity("currency", 10, 11, "CNY"))
    assert parse_annotated("[两千](amount:2000)")[1] == (Entity("amount", 0, 2, "2000"),)
    assert parse_annotated("no [brackets] here")[0] == "no [brackets] here"


def test_yaml_reads_intents_lookups_regexes_synonyms() -> None:
    data = parse_yaml(SAMPLE)
    assert data.intents == ["order_audit", "order_payment"]
    assert [ex.text for ex in data.examples][:2] == ["审核订单 66120", "please audit order 12345"]
    assert data.lookups == {"currency": ["人民币", "USD"]}
    assert data.regexes == {"task_id": ["(?<=T-)\\d+"]}
    assert data.synonyms == {"CNY": ["块"]}
    assert data.entity_types == ["amount", "currency", "order_no"]


def test_round_trip_yaml_jsonl_yaml(tmp_path: Path) -> None:
    data = parse_yaml(SAMPLE)
    yml, jsonl = tmp_path / "a.yml", tmp_path / "a.jsonl"
    dump_yaml(data, yml)
    dump_jsonl(data, jsonl)
    from_yaml, from_jsonl = load(yml), load(jsonl)
    assert from_yaml == data and from_jsonl == data
    assert dump_yaml(from_jsonl) == dump_yaml(data)


def _grouped(data: TrainingData) -> TrainingData:
    """YAML groups examples by intent (first-seen order); JSONL keeps any order."""
    order = {name: i for i, name in reversed(list(enumerate(ex.intent for ex in data.examples)))}
    examples = sorted(data.examples, key=lambda ex: order[ex.intent])
    return TrainingData(examples, data.lookups, data.regexes, data.synonyms)


def test_the_packaged_files_round_trip() -> None:
    for data in (load(demo_data_path()), eval_data(), generate_demo_data(3, scale=0.05)):
        assert parse_jsonl(dump_jsonl(data).splitlines()) == data
        assert parse_yaml(dump_yaml(data)) == _grouped(data)


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="[]\n(){}\\"),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(st.tuples(_text, st.sampled_from(["order_no", "amount", None])), min_size=1, max_size=5)
)
def test_any_annotated_example_round_trips(pieces: list[tuple[str, str | None]]) -> None:
    text, ents = "", []
    for piece, entity in pieces:
        if entity is not None and piece.strip() == piece and piece:
            ents.append(Entity(entity, len(text), len(text) + len(piece)))
        text += piece
    ex = NluExample(text, "greet", tuple(ents))
    back_text, back_ents = parse_annotated(to_annotated(ex.text, ex.entities))
    assert (back_text, back_ents) == (ex.text, ex.entities)
    if text.strip() and text == text.strip():
        data = TrainingData([ex])
        assert parse_jsonl(dump_jsonl(data).splitlines()) == data


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("nlu: [{intent: x}]", "intent x has no examples"),
        ("nlu: [{intent: x, lookup: y, examples: [a]}]", "needs exactly one"),
        ("nlu:\n- intent: a\n  examples: |\n    not a list line\n", "must start with '- '"),
        ("nlu:\n- intent: bad name\n  examples: |\n    - hi\n", "invalid intent name"),
        ("nlu:\n- regex: order_no\n  examples: |\n    - ([\n", "invalid pattern"),
        ("other: 1", "unknown top-level keys"),
        ("nlu:\n- intent: a\n  examples: |\n    - [x](bad name)\n", ""),
        ("nlu: [", "invalid YAML"),
    ],
)
def test_bad_yaml_is_refused_with_a_message(yaml_text: str, message: str) -> None:
    try:
        data = parse_yaml(yaml_text, name="x.yml")
    except TrainingDataError as exc:
        assert "x.yml" in str(exc)
        if message:
            import re

            assert re.search(message, str(exc))
        return
    # "[x](bad name)" is not an annotation at all: it stays plain text.
    assert data.examples[0].text == "[x](bad name)"


def test_bad_jsonl_is_refused_with_the_line() -> None:
    with pytest.raises(TrainingDataError, match=r"<jsonl>:2: .*outside the text"):
        parse_jsonl(['{"text": "hi", "intent": "greet"}', '{"text": "hi", "intent": "greet", "entities": '
                     '[{"entity": "x", "start": 0, "end": 9}]}'])  # fmt: skip
    with pytest.raises(TrainingDataError, match="overlapping"):
        parse_jsonl(['{"text": "abcd", "intent": "g", "entities": [{"entity": "x", "start": 0, "end": 3}, '
                     '{"entity": "y", "start": 2, "end": 4}]}'])  # fmt: skip
    with pytest.raises(TrainingDataError, match="invalid JSON"):
        parse_jsonl(["{"])
    with pytest.raises(TrainingDataError, match="unknown training data format"):
        load("data.txt")
