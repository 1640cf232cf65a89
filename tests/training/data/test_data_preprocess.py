"""Normalization, stop words, de-duplication and key-hash splits."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt2_agent.training.data import (
    PreprocessConfig,
    SourceSpecError,
    SplitRatios,
    deduplicate,
    load_stopwords,
    normalize_text,
    preprocess_texts,
    remove_stopwords,
    split_for_key,
    split_records,
    text_fingerprint,
)
from gpt2_agent.training.data.preprocess import SPLITS, key_unit


def test_nfkc_folds_full_width_and_collapses_space() -> None:
    assert normalize_text("ＵＲＧＥＮＴ：  尺码 ４２\n") == "URGENT: 尺码 42"
    assert normalize_text("ＡＢ", form="NFC") == "ＡＢ"
    assert normalize_text("Hello  World", form=None, lowercase=True) == "hello world"
    with pytest.raises(SourceSpecError, match="NFX"):
        normalize_text("x", form="NFX")  # type: ignore[arg-type]


def test_stopword_lists_ship_and_keep_negations() -> None:
    en, zh = load_stopwords("en"), load_stopwords("zh")
    assert {"the", "and", "of"} <= en and not {"no", "not"} & en
    assert {"的", "了", "我们"} <= zh and not {"不", "没", "别"} & zh
    with pytest.raises(SourceSpecError, match="fr"):
        load_stopwords("fr")


def test_stopword_removal() -> None:
    assert remove_stopwords("Please ship the order to my home, not the office") == (
        "Please ship order home, not office"
    )
    assert remove_stopwords("我们的订单不需要转运了", ["zh"]) == "订单不需要转运"
    assert remove_stopwords("The THE the", ["en"]) == ""


def test_dedup_by_normalized_text() -> None:
    texts = ["URGENT ship now", "ＵＲＧＥＮＴ  ship now", "urgent ship now", "no rush", "No rush "]
    assert list(deduplicate(texts)) == ["URGENT ship now", "no rush"]
    records = [{"t": "a"}, {"t": "A"}, {"t": "b"}]
    assert list(deduplicate(records, text_of=lambda r: r["t"])) == [{"t": "a"}, {"t": "b"}]
    assert text_fingerprint("Ａ b") == text_fingerprint("a  B")
    with pytest.raises(TypeError, match="text_of"):
        list(deduplicate([1, 2]))  # type: ignore[list-item]


def test_preprocess_pipeline() -> None:
    config = PreprocessConfig(stopwords=("en",), lowercase=True)
    out = list(preprocess_texts(["The ＵＲＧＥＮＴ order", "the urgent ORDER", "the", "A new one"], config))
    assert out == ["urgent order", "new one"]
    assert list(preprocess_texts(["x", "x"], PreprocessConfig(dedup=False))) == ["x", "x"]


def test_split_is_stable_across_runs_and_machines() -> None:
    # Literal expectations: SHA-256 does not depend on the platform, the process or PYTHONHASHSEED,
    # so a change here means every trained model's test set silently changed.
    assert round(key_unit("66120"), 6) == 0.210769
    keys = ("66120", "12345", "77410", "10008", "10010")
    assert [split_for_key(k) for k in keys] == ["train", "train", "test", "validation", "test"]


@given(st.text(min_size=1, max_size=20))
def test_same_key_same_split(key: str) -> None:
    assert split_for_key(key) == split_for_key(key) in SPLITS
    assert split_for_key(key, salt="b") == split_for_key(key, salt="b")


def test_no_key_in_two_splits_and_ratios_hold() -> None:
    items = [(f"{10000 + i % 5000}", i) for i in range(10_000)]  # every key twice
    parts = split_records(items, key_of=lambda item: item[0])
    keys = {name: {k for k, _ in part} for name, part in parts.items()}
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    shares = Counter({name: len(part) / len(items) for name, part in parts.items()})
    assert shares["train"] == pytest.approx(0.8, abs=0.03)
    assert shares["validation"] == pytest.approx(0.1, abs=0.02)
    # A salt gives an independent split; custom ratios are honoured.
    salted = split_records(items, key_of=lambda item: item[0], salt="other")
    assert salted["test"] != parts["test"]
    only_train = split_records(items, key_of=lambda item: item[0], ratios=SplitRatios(1.0, 0.0, 0.0))
    assert len(only_train["train"]) == len(items)


def test_bad_ratios() -> None:
    with pytest.raises(SourceSpecError):
        SplitRatios(0.8, 0.3, 0.1)
    with pytest.raises(SourceSpecError):
        SplitRatios(1.2, -0.2, 0.0)
