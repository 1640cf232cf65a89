"""Choosing the precision a version is served at: fp32, bf16 autocast, or dynamic int8.

Faster arithmetic is only used where it keeps the model's answers:

- **int8** (``quantize=True``): ``torch.ao.quantization.quantize_dynamic`` on every Linear layer,
  per output channel. GPT-2 keeps its projections in ``transformers``' ``Conv1D`` (``x @ W``
  with ``W`` as (in, out)), which quantization does not know, so they are first rewritten as
  ``nn.Linear`` with the transposed weight. Quantization is used only if the accuracy on a
  labelled check sample drops by at most ``tolerance`` against fp32; without labelled data it is
  refused, and the reason is logged. Activations are quantized per call over the whole batch, so
  an int8 answer can shift slightly with the other texts it is batched with.
- **bf16** (``dtype="auto"``): autocast (matmuls in bf16, layer norms and softmax in fp32; the
  matmul weights are cast to bf16 once at load rather than at every pass) where the CPU computes
  bf16 natively, its argmax agrees with fp32 on at least ``min_agreement`` of the check sample,
  and it is measured faster than fp32 on this machine.

The check sample is given to the runtime (texts and labels), or stored with the version as
``eval_sample.json``: ``{"texts": [...], "labels": [...]}`` (labels as names or ids, optional).
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from gpt2_agent.registry.artifact import EVAL_SAMPLE_FILE
from gpt2_agent.serving.loader import SEQUENCE_CLASSIFICATION, ServedModel

logger = logging.getLogger(__name__)

DTYPES = ("auto", "fp32", "bf16")
_TIMING_REPEATS = 3


@dataclass(frozen=True)
class CheckSample:
    """Held-out texts to check a cheaper precision against fp32; ``labels`` (names) enable the metric."""

    texts: tuple[str, ...]
    labels: tuple[str, ...] | None = None
    source: str = "given"

    def __post_init__(self) -> None:
        if not self.texts:
            raise ValueError("a check sample needs at least one text")
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ValueError(f"check sample has {len(self.texts)} texts but {len(self.labels)} labels")

    @classmethod
    def of(
        cls, texts: Sequence[str], labels: Sequence[str] | None = None, source: str = "given"
    ) -> CheckSample:
        """Build from any sequences."""
        return cls(tuple(texts), tuple(str(x) for x in labels) if labels is not None else None, source)


@dataclass(frozen=True)
class PrecisionPolicy:
    """What the runtime may use. ``tolerance`` is the largest accepted drop in accuracy (absolute)."""

    dtype: str = "auto"
    quantize: bool = False
    tolerance: float = 0.01
    min_agreement: float = 0.99
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES} (got {self.dtype!r})")
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be >= 0 (got {self.tolerance})")


def stored_sample(served: ServedModel) -> CheckSample | None:
    """The version's own ``eval_sample.json``, or None if it has none (or it is unusable)."""
    path = served.path / EVAL_SAMPLE_FILE
    if not path.is_file():
        return None
    try:
        return parse_sample(json.loads(path.read_text(encoding="utf-8")), served.labels, source=str(path))
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("%s: ignoring %s: %s", served.ref, path, exc)
        return None


def parse_sample(value: Any, label_names: Sequence[str], *, source: str) -> CheckSample:
    """``{"texts", "labels"?}`` or ``[{"text", "label"?}, ...]``; integer labels index ``label_names``."""
    if isinstance(value, list):
        texts = [str(item["text"]) for item in value]
        raw = [item.get("label") for item in value]
        raw_labels: list[Any] | None = None if any(x is None for x in raw) else raw
    elif isinstance(value, dict):
        texts = [str(t) for t in value["texts"]]
        raw_labels = value.get("labels")
    else:
        raise TypeError("expected an object or a list")
    labels = None
    if raw_labels is not None:
        labels = [label_names[x] if isinstance(x, int) else str(x) for x in raw_labels]
        unknown = set(labels) - set(label_names)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)!r} are not among the model's {list(label_names)!r}")
    return CheckSample.of(texts, labels, source=source)


def predict_probabilities(served: ServedModel, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    """Probabilities (N, C) of ``texts`` in input order, computed in length-sorted batches."""
    rows = served.encode(texts)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = torch.empty((len(rows), len(served.labels)), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out[chunk] = served.probabilities([rows[i] for i in chunk])
    return out


def to_linear(model: nn.Module) -> int:
    """Replace every ``Conv1D`` under ``model`` by the equivalent ``nn.Linear``; return how many."""
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, Conv1D):
            linear = nn.Linear(child.nx, child.nf)
            with torch.no_grad():
                linear.weight.copy_(child.weight.t())  # Conv1D keeps (in, out); Linear wants (out, in)
                linear.bias.copy_(child.bias)
            linear.requires_grad_(False)
            setattr(model, name, linear)
            count += 1
        else:
            count += to_linear(child)
    return count


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """A dynamically quantized copy: int8 weights (per output channel), int8 activations per call."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    clone = copy.deepcopy(model)
    to_linear(clone)
    with warnings.catch_warnings():
        # torch marks eager-mode quantization deprecated in favour of torchao, which we do not ship.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized: PreTrainedModel = quantize_dynamic(
            clone, qconfig_spec={nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    return quantized


def bf16_matmul_weights(model: PreTrainedModel) -> PreTrainedModel:
    """A copy whose matmul weights (``Conv1D`` and ``Linear``) are stored in bf16, for autocast.

    Autocast would cast every fp32 weight to bf16 on every forward pass (about 60 MB of memory
    traffic for the 6-layer, d=384 model); casting once gives the same numbers for free. Embeddings
    and layer norms stay fp32, as autocast computes them.
    """
    clone = copy.deepcopy(model)
    for module in clone.modules():
        if isinstance(module, Conv1D | nn.Linear):
            module.to(torch.bfloat16)
    return clone


def native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (avx512_bf16 or AMX); emulated bf16 is slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_precision(base: ServedModel, policy: PrecisionPolicy, sample: CheckSample | None) -> ServedModel:
    """``base`` (fp32) at the cheapest precision ``policy`` allows and ``sample`` vindicates.

    Every decision and its numbers go to the log and to the returned model's ``info``.
    """
    if base.task != SEQUENCE_CLASSIFICATION:
        return base.with_precision("fp32", reason=f"{base.task} models are served in fp32")
    reference = predict_probabilities(base, sample.texts, policy.batch_size) if sample else None
    if policy.quantize:
        chosen = _try_int8(base, policy, sample, reference)
        if chosen is not None:
            return chosen
    if policy.dtype == "fp32":
        return _decided(base.with_precision("fp32", reason="fp32 requested"))
    if policy.dtype == "bf16":
        if not native_bf16():
            logger.warning("%s: bf16 requested but this CPU has no native bf16; it will be slow", base.ref)
        return _decided(
            base.with_precision("bf16", module=bf16_matmul_weights(base.model), reason="bf16 requested")
        )
    return _auto_dtype(base, policy, sample, reference)


def _try_int8(
    base: ServedModel, policy: PrecisionPolicy, sample: CheckSample | None, reference: torch.Tensor | None
) -> ServedModel | None:
    if sample is None or sample.labels is None or reference is None:
        logger.warning(
            "%s: int8 quantization refused: no labelled evaluation sample (pass check_samples to the "
            "runtime or store %s with the version)",
            base.ref,
            EVAL_SAMPLE_FILE,
        )
        return None
    candidate = base.with_precision("int8", module=quantize_int8(base.model))
    probs = predict_probabilities(candidate, sample.texts, policy.batch_size)
    target = torch.tensor([base.labels.index(x) for x in sample.labels])
    fp32_acc = float((reference.argmax(-1) == target).float().mean())
    int8_acc = float((probs.argmax(-1) == target).float().mean())
    agreement = float((probs.argmax(-1) == reference.argmax(-1)).float().mean())
    numbers: dict[str, Any] = {
        "fp32_accuracy": fp32_acc,
        "int8_accuracy": int8_acc,
        "int8_agreement": agreement,
        "tolerance": policy.tolerance,
        "sample": sample.source,
        "sample_size": len(sample.texts),
    }
    if fp32_acc - int8_acc > policy.tolerance:
        logger.warning(
            "%s: int8 quantization refused: accuracy %.4f vs fp32 %.4f drops more than the tolerance %.4f "
            "(%d texts from %s)",
            base.ref,
            int8_acc,
            fp32_acc,
            policy.tolerance,
            len(sample.texts),
            sample.source,
        )
        return None
    return _decided(candidate.with_precision("int8", reason="int8 within tolerance", **numbers))


def _auto_dtype(
    base: ServedModel, policy: PrecisionPolicy, sample: CheckSample | None, reference: torch.Tensor | None
) -> ServedModel:
    if not native_bf16():
        return _decided(base.with_precision("fp32", reason="no native bf16 on this CPU"))
    if sample is None or reference is None:
        reason = f"no check sample to verify bf16 (pass check_samples or store {EVAL_SAMPLE_FILE})"
        return _decided(base.with_precision("fp32", reason=reason))
    bf16 = base.with_precision("bf16", module=bf16_matmul_weights(base.model))
    probs = predict_probabilities(bf16, sample.texts, policy.batch_size)
    agreement = float((probs.argmax(-1) == reference.argmax(-1)).float().mean())
    numbers: dict[str, Any] = {
        "bf16_agreement": agreement,
        "max_abs_prob_diff": float((probs - reference).abs().max()),
        "sample": sample.source,
        "sample_size": len(sample.texts),
    }
    if agreement < policy.min_agreement:
        return _decided(
            base.with_precision(
                "fp32", reason=f"bf16 argmax agreement {agreement:.4f} < {policy.min_agreement}", **numbers
            )
        )
    fp32_ms, bf16_ms = _time_both(base, bf16, sample.texts, policy.batch_size)
    numbers |= {"fp32_batch_ms": fp32_ms, "bf16_batch_ms": bf16_ms}
    if bf16_ms < fp32_ms:
        return _decided(bf16.with_precision("bf16", reason="bf16 agrees and is faster", **numbers))
    return _decided(base.with_precision("fp32", reason="bf16 agrees but is not faster here", **numbers))


def _time_both(a: ServedModel, b: ServedModel, texts: Sequence[str], batch_size: int) -> tuple[float, float]:
    """Median milliseconds of one batch for ``a`` and ``b``, interleaved so load drifts hit both."""
    rows = sorted(a.encode(texts), key=len)[:batch_size]
    while len(rows) < batch_size:
        rows = rows + rows[: batch_size - len(rows)]
    a.logits(rows), b.logits(rows)  # warm up (oneDNN builds its kernels on first use)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(_TIMING_REPEATS):
        for model, bucket in ((a, times[0]), (b, times[1])):
            start = time.perf_counter()
            model.logits(rows)
            bucket.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def _decided(served: ServedModel) -> ServedModel:
    details = {k: v for k, v in served.info.items() if k != "reason"}
    logger.info("%s: serving in %s: %s %s", served.ref, served.precision, served.info.get("reason"), details)
    return served


def load_sample_file(path: Path, label_names: Sequence[str]) -> CheckSample:
    """Read a check sample from a JSON file (same format as ``eval_sample.json``)."""
    return parse_sample(json.loads(path.read_text(encoding="utf-8")), label_names, source=str(path))


__all__ = [
    "DTYPES",
    "EVAL_SAMPLE_FILE",
    "CheckSample",
    "PrecisionPolicy",
    "bf16_matmul_weights",
    "choose_precision",
    "load_sample_file",
    "native_bf16",
    "parse_sample",
    "predict_probabilities",
    "quantize_int8",
    "stored_sample",
    "to_linear",
]
