"""One registered version, loaded for inference: weights, tokenizer, labels and the batched forward pass.

A :class:`ServedModel` is immutable once built: the runtime swaps whole objects on hot reload,
so everything one batch needs (tokenizer, weights, labels, precision) comes from one version.

Texts are encoded exactly as training encodes them (``gpt2_agent.training.encoding``):
``tokenizer(text, truncation=True, max_length=n_positions, add_special_tokens=False)``, and an
empty text becomes the single EOS token. Batches are right-padded and run **without** an
attention mask: GPT-2's attention is causal, so a real token never sees the pads to its right,
and leaving the mask out keeps SDPA on its fused causal kernel. The classifier then reads the
hidden state of each row's last real token, which is what ``GPT2ForSequenceClassification``
does on an unpadded input (see :mod:`gpt2_agent.serving.forward`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from gpt2_agent.modeling import MODEL_CLASSES
from gpt2_agent.serving.forward import classify_logits, supports_fast_path

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.json"
SEQUENCE_CLASSIFICATION = "sequence_classification"
PRECISIONS = ("fp32", "bf16", "int8")
_TASK_BY_ARCHITECTURE = {cls.__name__: task for task, cls in MODEL_CLASSES.items()}
# GPT-2's Python ``gelu_new`` and the fused ``gelu_pytorch_tanh`` compute the same tanh
# approximation; the fused one saves ~13 % of a small-batch forward (PERFORMANCE-NOTES).
_FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}


def task_from_config(config: dict[str, Any]) -> str:
    """The modeling task (``sequence_classification``, ...) named by ``config.json``'s architectures."""
    for arch in config.get("architectures") or []:
        if arch in _TASK_BY_ARCHITECTURE:
            return _TASK_BY_ARCHITECTURE[arch]
    raise ValueError(f"unknown architectures {config.get('architectures')!r} in config.json")


class TextEncoder:
    """Thread-safe text → token ids, the way training encodes classification inputs.

    The Hugging Face wrapper reconfigures truncation on the shared Rust tokenizer at every call,
    which fails ("Already borrowed") when threads encode at once; a private copy configured once
    and only read afterwards is safe to share.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerFast, max_length: int) -> None:
        self.max_length = max_length
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
        if eos is None:
            raise ValueError("the tokenizer has neither an EOS nor a pad token")
        self.eos_id = int(eos)
        self._backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._backend.no_padding()
        self._backend.enable_truncation(max_length)

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (at most ``max_length``; an empty text is ``[eos]``)."""
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.ids) or [self.eos_id] for e in encodings]


@dataclass(frozen=True)
class ServedModel:
    """A loaded version. ``precision`` is ``fp32``, ``bf16`` (autocast) or ``int8`` (dynamic quantization).

    ``filler_id`` pads rows on the right; it never influences a result (see the module docstring).

    ``model`` and ``encode`` are safe to use from several threads at once (inference only).
    ``info`` records how the precision was chosen (see :mod:`gpt2_agent.serving.precision`).
    """

    name: str
    version: int
    task: str
    labels: tuple[str, ...]
    model: PreTrainedModel
    encode: TextEncoder
    filler_id: int
    path: Path
    precision: str = "fp32"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    def with_precision(
        self, precision: str, *, module: PreTrainedModel | None = None, **info: Any
    ) -> ServedModel:
        """A copy that runs at ``precision`` (with another ``module`` for ``int8``); ``info`` is merged."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
        return replace(self, precision=precision, model=module or self.model, info={**self.info, **info})

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The autocast region this version's forward passes run in."""
        if self.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                yield
        else:
            yield

    def logits(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Class logits (B, C) in fp32 for right-padded rows of token ids (each non-empty)."""
        if self.task != SEQUENCE_CLASSIFICATION:
            raise ValueError(f"{self.ref} is a {self.task} model, not a sequence classifier")
        width = max(len(r) for r in rows)
        ids = torch.tensor([[*r, *([self.filler_id] * (width - len(r)))] for r in rows], dtype=torch.long)
        last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)  # (B,)
        with torch.inference_mode(), self.autocast():
            if supports_fast_path(self.model):
                logits = classify_logits(self.model, ids, last)
            else:  # another classifier layout: let it pool with an explicit mask
                mask = (torch.arange(width)[None, :] <= last[:, None]).to(torch.long)
                logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        return logits.float()

    def probabilities(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Class probabilities (B, C), fp32."""
        return torch.softmax(self.logits(rows), dim=-1)


def load_served_model(name: str, version: int, path: Path) -> ServedModel:
    """Load a registry version folder in fp32, in eval mode, ready to serve."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    task = task_from_config(config)
    overrides: dict[str, Any] = {}
    activation = config.get("activation_function")
    if activation in _FUSED_ACTIVATIONS:
        overrides["activation_function"] = _FUSED_ACTIVATIONS[activation]
    model = MODEL_CLASSES[task].from_pretrained(
        str(path), local_files_only=True, dtype=torch.float32, attn_implementation="sdpa", **overrides
    )
    model.eval()
    model.requires_grad_(False)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    max_length = int(getattr(model.config, "n_positions", 0) or tokenizer.model_max_length)
    encoder = TextEncoder(tokenizer, max_length)
    # The filler after a row's last token is never attended to nor read, so any id works; one that
    # is not the config's pad id keeps transformers from warning about a missing attention mask.
    filler = 0 if model.config.pad_token_id != 0 else 1
    labels = _labels(path, model, task)
    logger.info("loaded %s:%s (%s, %d labels) from %s", name, version, task, len(labels), path)
    return ServedModel(
        name=name,
        version=version,
        task=task,
        labels=labels,
        model=model,
        encode=encoder,
        filler_id=filler,
        path=path,
    )


def _labels(path: Path, model: PreTrainedModel, task: str) -> tuple[str, ...]:
    """Label names in id order: ``labels.json`` if it lists them, else the config's ``id2label``."""
    if task != SEQUENCE_CLASSIFICATION:
        return ()
    stored = path / LABELS_FILE
    if stored.is_file():
        value = json.loads(stored.read_text(encoding="utf-8"))
        if isinstance(value, list) and value:
            labels = tuple(str(v) for v in value)
            if len(labels) != model.config.num_labels:
                raise ValueError(
                    f"{stored}: {len(labels)} labels but the model has {model.config.num_labels} outputs"
                )
            return labels
    id2label: dict[Any, Any] = dict(model.config.id2label or {})
    return tuple(str(id2label[i]) for i in sorted(id2label, key=int))


__all__ = [
    "LABELS_FILE",
    "PRECISIONS",
    "SEQUENCE_CLASSIFICATION",
    "ServedModel",
    "TextEncoder",
    "load_served_model",
    "task_from_config",
]
