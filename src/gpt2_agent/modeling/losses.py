"""Causal-LM loss without materialising fp32 logits.

The plain path (``lm_head`` → ``logits.float()`` → ``cross_entropy``) makes about ten passes over a
(tokens × vocab) tensor: the bf16 logits, their fp32 upcast, log-softmax, the NLL gather and
their backward twins. On a CPU that traffic costs more than the LM-head matmuls themselves
(PERFORMANCE-NOTES: softmax + cross-entropy ≈ 19 % and the upcast ≈ 18 % of a bf16 step).

:func:`linear_cross_entropy` fuses the head and the loss. Logits are computed for blocks of
1024 tokens (one efficient matmul) straight into the buffer that will hold their gradient; a few
rows at a time they become an fp32 softmax small enough to stay in cache, and immediately the
gradient ``(softmax - onehot) / n``, written back over the logits in the compute dtype. The
backward pass is then just two matmuls. Values match ``F.cross_entropy`` on fp32 logits; the LM
head plus loss runs about 1.5x faster in bf16 (measured at 8k and 50k vocabularies).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

IGNORE_INDEX = -100
_TINY = torch.finfo(torch.float32).tiny


MATMUL_ROWS = 1024  # tokens per LM-head matmul: big enough to run the matmul at full speed


def _softmax_rows(vocab_size: int) -> int:
    # Tokens per softmax pass: keep the fp32 probabilities near 2 MiB, inside the L2/L3 cache, so
    # the passes over them (softmax, target fix-up, scaling into bf16) do not touch main memory.
    return max(8, min(64, (1 << 21) // (4 * max(vocab_size, 1))))


def _chunk_rows(vocab_size: int) -> int:
    # No-grad evaluation materialises one fp32 chunk of logits at a time.
    return max(64, min(1024, (1 << 23) // max(vocab_size, 1)))


class _LinearCrossEntropy(torch.autograd.Function):
    """``cross_entropy(hidden @ weight.T, targets)`` (mean over non-ignored targets), fused."""

    @staticmethod
    def forward(
        ctx: Any, hidden: Tensor, weight: Tensor, targets: Tensor, compute_dtype: torch.dtype
    ) -> Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            h = hidden.to(compute_dtype)  # (N, d)
            w = weight.to(compute_dtype)  # (V, d)
            n, vocab = h.shape[0], w.shape[0]
            valid = (targets != IGNORE_INDEX).to(torch.float32).unsqueeze(1)  # (N, 1)
            n_valid = max(int(valid.sum().item()), 1)
            scale = 1.0 / n_valid
            safe_targets = targets.clamp(min=0).unsqueeze(1)  # (N, 1)
            grad_logits = torch.empty((n, vocab), dtype=compute_dtype, device=h.device)
            grad_hidden = torch.empty_like(h)
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            sub = _softmax_rows(vocab)
            for start in range(0, n, MATMUL_ROWS):
                end = min(n, start + MATMUL_ROWS)
                block = grad_logits[start:end]
                torch.mm(h[start:end], w.t(), out=block)  # logits, written where their gradient goes
                for a in range(start, end, sub):
                    b = min(end, a + sub)
                    rows = grad_logits[a:b]  # (r, V) logits in the compute dtype
                    probs = torch.softmax(rows, dim=-1, dtype=torch.float32)  # (r, V), cache-resident
                    tgt, keep = safe_targets[a:b], valid[a:b]
                    # -log p(target); exact unless p underflows fp32, where the loss is capped at ~87.
                    total -= (probs.gather(1, tgt).clamp_min(_TINY).log() * keep).sum()
                    probs.scatter_add_(1, tgt, -keep)  # softmax - onehot
                    torch.mul(probs, keep * scale, out=rows)  # d loss / d logits, over the logits
                # d loss / d hidden while the block's gradient is still warm.
                torch.mm(block, w, out=grad_hidden[start:end])
            ctx.save_for_backward(h, grad_logits, grad_hidden)
            ctx.input_dtypes = (hidden.dtype, weight.dtype)
        return total * scale

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        h, grad_logits, grad_hidden = ctx.saved_tensors
        hidden_dtype, weight_dtype = ctx.input_dtypes
        with torch.autocast(h.device.type, enabled=False):
            go = grad_output.to(torch.float32)
            d_hidden = d_weight = None
            if ctx.needs_input_grad[0]:
                d_hidden = (grad_hidden.to(hidden_dtype) * go).to(hidden_dtype)
            if ctx.needs_input_grad[1]:
                d_weight = (grad_logits.t() @ h).to(weight_dtype) * go  # (V, d)
        return d_hidden, d_weight, None, None


def linear_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets`` (``-100`` ignored).

    ``hidden`` is (N, d) or (B, T, d); ``targets`` has the leading shape of ``hidden``. Under
    autocast the matmuls run in the autocast dtype and the softmax in fp32, as with the plain
    path; outside autocast everything runs in ``hidden``'s dtype.
    """
    hidden2 = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    device = hidden2.device.type
    compute_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden2.dtype
    if torch.is_grad_enabled() and (hidden2.requires_grad or weight.requires_grad):
        out: Tensor = _LinearCrossEntropy.apply(hidden2, weight, flat_targets, compute_dtype)
        return out
    return _linear_cross_entropy_eval(hidden2, weight, flat_targets, compute_dtype)[0]


def _linear_cross_entropy_eval(
    hidden: Tensor, weight: Tensor, targets: Tensor, compute_dtype: torch.dtype
) -> tuple[Tensor, int]:
    """Loss and number of scored tokens, without gradients (chunked the same way)."""
    with torch.no_grad(), torch.autocast(hidden.device.type, enabled=False):
        h, w = hidden.to(compute_dtype), weight.to(compute_dtype)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        n_valid = int((targets != IGNORE_INDEX).sum().item())
        step = _chunk_rows(w.shape[0])
        for start in range(0, h.shape[0], step):
            end = min(h.shape[0], start + step)
            tgt = targets[start:end]
            keep = tgt != IGNORE_INDEX
            if not bool(keep.any()):
                continue
            logits = (h[start:end] @ w.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, tgt.clamp(min=0).unsqueeze(1)).squeeze(1)
            total += ((lse - picked) * keep).sum()
        return total / max(n_valid, 1), n_valid


def causal_lm_loss(model: Any, input_ids: Tensor, labels: Tensor | None = None) -> Tensor:
    """Next-token loss of a ``GPT2LMHeadModel`` on ``input_ids`` (B, T), fused with the LM head.

    ``labels`` are the targets aligned with ``input_ids`` (already shifted, ``-100`` ignored);
    when omitted, ``input_ids`` predicts its own next token and the last position is ignored.
    """
    if labels is None:
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        labels[:, :-1] = input_ids[:, 1:]
    hidden = model.transformer(input_ids=input_ids).last_hidden_state  # (B, T, d)
    return linear_cross_entropy(hidden, model.lm_head.weight, labels)


__all__ = ["IGNORE_INDEX", "causal_lm_loss", "linear_cross_entropy"]
