"""The fused LM-head cross-entropy matches the plain path in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpt2_agent.modeling import IGNORE_INDEX, ModelSpec, build_model, causal_lm_loss, linear_cross_entropy


def _data(n: int = 300, d: int = 24, vocab: int = 50) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=g)
    weight = torch.randn(vocab, d, generator=g) * 0.3
    targets = torch.randint(0, vocab, (n,), generator=g)
    targets[::5] = IGNORE_INDEX
    return hidden, weight, targets


def _grads(fn, hidden, weight, targets, autocast=False):  # type: ignore[no-untyped-def]
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = fn(h, w, targets)
    (loss * 2.0).backward()  # a non-unit upstream gradient must flow through
    return loss.detach().float(), h.grad, w.grad


def _plain(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy((h @ w.t()).float(), t, ignore_index=IGNORE_INDEX)


def test_matches_cross_entropy_in_fp32() -> None:
    data = _data()
    ref, fused = _grads(_plain, *data), _grads(linear_cross_entropy, *data)
    for a, b in zip(ref, fused, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_matches_cross_entropy_under_bf16_autocast() -> None:
    data = _data()
    ref, fused = _grads(_plain, *data, autocast=True), _grads(linear_cross_entropy, *data, autocast=True)
    torch.testing.assert_close(ref[0], fused[0], rtol=1e-3, atol=1e-3)
    for a, b in zip(ref[1:], fused[1:], strict=True):
        assert b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)


def test_no_grad_path_matches() -> None:
    hidden, weight, targets = _data()
    with torch.no_grad():
        torch.testing.assert_close(
            linear_cross_entropy(hidden, weight, targets), _plain(hidden, weight, targets)
        )


@pytest.mark.parametrize("tied", [True])
def test_causal_lm_loss_equals_model_loss(tied: bool) -> None:
    torch.manual_seed(0)
    spec = ModelSpec(task="causal_lm", n_layer=2, n_embd=32, n_head=4, context=16, vocab_size=61)
    model = build_model(spec, eos_token_id=0)
    ids = torch.randint(0, 61, (3, 16))
    expected = model(input_ids=ids, labels=ids).loss
    got = causal_lm_loss(model, ids)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    got.backward()
    assert model.transformer.wte.weight.grad is not None  # tied head gets its gradient
