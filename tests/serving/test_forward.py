"""The last-token forward pass equals the plain ``transformers`` forward, padded or not."""

from __future__ import annotations

import torch
from tests.serving.conftest import order_texts, tiny_classifier
from transformers import PreTrainedTokenizerFast

from gpt2_agent.serving.forward import classify_logits, supports_fast_path


def test_fast_path_equals_full_forward_on_padded_batches(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_classifier(tokenizer, seed=8)
    model.config._attn_implementation = "sdpa"
    assert supports_fast_path(model)
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in order_texts(12, seed=4)] + [[5]]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])  # right-padded with an arbitrary id
    last = torch.tensor([len(r) - 1 for r in rows])
    with torch.inference_mode():
        got = classify_logits(model, ids, last)
        want = torch.cat(
            [model(input_ids=torch.tensor([r]), attention_mask=torch.ones(1, len(r))).logits for r in rows]
        )
    assert got.shape == (len(rows), 2)
    assert torch.allclose(got, want, atol=1e-5)


def test_fast_path_needs_sdpa(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_classifier(tokenizer, seed=8)
    model.config._attn_implementation = "eager"  # blocks called without a mask would not be causal
    assert not supports_fast_path(model)
