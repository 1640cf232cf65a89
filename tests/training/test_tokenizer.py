"""Byte-level BPE: exact round trips in Chinese, English and everything in between."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2_agent.training.tokenizer import (
    EOS_TOKEN,
    PAD_TOKEN,
    decode_exact,
    load_tokenizer,
    train_tokenizer,
)

CORPUS = [
    "Order 20240101-0001 approved, amount 1,299.00 CNY.",
    "订单 20240101-0002 已审核通过，金额 ￥3,500.00。",
    "请帮我审核订单号 A-7781 的付款。",
    "Please audit order A-7781 and e-mail the receipt to ops@example.com",
    "客户投诉：发票抬头有误（全角括号）。",
    "Refund   with  odd    spacing\tand tabs\nand newlines.",
] * 20

SAMPLES = [
    "订单已经审核通过",
    "Hello, world!",
    "订单 ORD-42 的金额是 ¥1,000，请确认。",
    "emoji 🚀📦✅ and 👩‍💻",
    "ＦＵＬＬ－ＷＩＤＴＨ　ａｂｃ　１２３！？",
    "  leading and trailing spaces  ",
    "mixed中文English混合123",
    "",
    "tab\there\r\nCRLF",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(iter(CORPUS), vocab_size=400, min_frequency=2, out_dir=out)
    return load_tokenizer(out)


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_exact(tokenizer, text: str) -> None:  # type: ignore[no-untyped-def]
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert decode_exact(tokenizer, ids) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_round_trip_any_unicode(tokenizer, text: str) -> None:  # type: ignore[no-untyped-def]
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert decode_exact(tokenizer, ids) == text


def test_special_tokens_and_saved_folder(tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert len(tokenizer) <= 400
    # Learnt merges make common Chinese words shorter than their UTF-8 bytes.
    assert len(tokenizer.encode("订单", add_special_tokens=False)) < len("订单".encode())
    tokenizer.save_pretrained(tmp_path / "again")
    again = load_tokenizer(tmp_path / "again")
    assert again.encode(SAMPLES[2]) == tokenizer.encode(SAMPLES[2])


def test_offsets_point_into_the_original_text(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "订单 ORD-42 金额 ¥1,000"
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    spans = enc["offset_mapping"]
    covered = {i for a, b in spans for i in range(a, b)}
    assert covered | {i for i, ch in enumerate(text) if ch == " "} == set(range(len(text)))
    # A character split over several byte tokens gives each of them the same span.
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert [a for a, _ in spans] == sorted(a for a, _ in spans)


def test_refuses_empty_corpus() -> None:
    with pytest.raises(ValueError, match="no texts"):
        train_tokenizer(iter([]), vocab_size=300)
