"""Batched inference of the joint NLU model (intent head + BIO slot head on one GPT-2).

Texts are encoded as training encodes them (``tokenizer(text, add_special_tokens=False)``,
truncated to the context; an empty text is the single EOS token). Rows are right-padded and run
without an attention mask: attention is causal, so a real token never sees the pads to its right,
and SDPA stays on its fused causal kernel. The intent head reads each row's last real token, which
is what :class:`~gpt2_agent.modeling.GPT2ForJointNLU` does with a mask.

:class:`MicroBatcher` lets many threads share one model: a request that arrives while a batch is
running waits for the next one, which takes everything queued (up to ``max_batch``) in one forward
pass. A lone request runs at once; nothing waits for a batch to fill.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from gpt2_agent.modeling import GPT2ForJointNLU

logger = logging.getLogger(__name__)

PATTERNS_FILE = "patterns.json"  # lookups, regexes, synonyms of the training data
NLU_FILE = "nlu.json"  # parser settings stored with the model (min_confidence...)
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "[PAD]"


@dataclass(frozen=True)
class ModelSpan:
    """An entity span the slot head tagged: ``text[start:end]``, mean token probability."""

    entity: str
    start: int
    end: int
    confidence: float


@dataclass(frozen=True)
class RawPrediction:
    """The model's view of one text: intent probabilities (label order) and tagged spans."""

    intents: tuple[tuple[str, float], ...]  # sorted, most probable first
    spans: tuple[ModelSpan, ...]


class JointPredictor:
    """A loaded joint NLU model folder. ``predict`` is safe to call from several threads.

    :param folder: a folder written by ``save_pretrained`` with ``tokenizer.json`` (a registry version).
    :param precision: ``"fp32"`` or ``"bf16"`` (CPU autocast; only worth it where bf16 is native).
    """

    def __init__(self, folder: str | Path, *, precision: str = "fp32") -> None:
        self.folder = Path(folder)
        model = GPT2ForJointNLU.from_pretrained(str(self.folder), local_files_only=True, dtype=torch.float32)
        model.eval()
        model.requires_grad_(False)
        if model.sparse_size and model.featurizer is None:
            raise ValueError(
                f"{self.folder}: the model reads n-gram features but the folder has no sparse_features.json"
            )
        self.model = model
        self.intent_labels: list[str] = list(model.config.intent_labels)
        self.slot_labels: list[str] = list(model.config.slot_labels)
        self.max_length = int(model.config.n_positions)
        self.precision = precision
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        eos = self._tokenizer.token_to_id(EOS_TOKEN)
        pad = self._tokenizer.token_to_id(PAD_TOKEN)
        if eos is None:
            raise ValueError(f"{self.folder}: the tokenizer has no {EOS_TOKEN} token")
        self.eos_id = int(eos)
        self.pad_id = int(pad if pad is not None else eos)
        self.settings = _read_json(self.folder / NLU_FILE)
        self.patterns = _read_json(self.folder / PATTERNS_FILE)

    def predict(self, texts: Sequence[str]) -> list[RawPrediction]:
        """Intent probabilities and slot spans of each text (one forward pass)."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        rows = [list(e.ids) or [self.eos_id] for e in encodings]
        offsets = [list(e.offsets) for e in encodings]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
        last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
        with torch.inference_mode(), self._autocast():
            hidden = self.model.transformer(input_ids=ids, use_cache=False).last_hidden_state  # (B, T, d)
            pooled = hidden[torch.arange(len(rows)), last]  # (B, d)
            intent_logits = self.model.intent_head(pooled)  # (B, n_intents)
            if self.model.featurizer is not None:
                sparse = self.model.featurizer.tensors(texts)
                intent_logits = intent_logits + self.model.sparse_logits(**sparse)
            intent_probs = torch.softmax(intent_logits.float(), dim=-1)
            slot_probs = torch.softmax(self.model.slot_head(hidden).float(), dim=-1)  # (B, T, n_slots)
        best_p, best_tag = slot_probs.max(dim=-1)  # (B, T)
        out = []
        for i, text in enumerate(texts):
            probs = intent_probs[i].tolist()
            ranking = tuple(sorted(zip(self.intent_labels, probs, strict=True), key=lambda kv: -kv[1]))
            n = len(offsets[i])
            tags = [self.slot_labels[t] for t in best_tag[i, :n].tolist()]
            spans = decode_bio(tags, best_p[i, :n].tolist(), offsets[i], text)
            out.append(RawPrediction(ranking, tuple(spans)))
        return out

    def _autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return _NullContext()


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def decode_bio(
    tags: Sequence[str], probs: Sequence[float], offsets: Sequence[tuple[int, int]], text: str
) -> list[ModelSpan]:
    """Character spans from per-token BIO tags; an ``I-x`` after anything but ``x`` starts a span.

    Byte-level tokens carry their leading space, so spans are trimmed of edge whitespace.
    """
    tags, probs = _word_level(tags, probs, offsets, text)
    spans: list[ModelSpan] = []
    current: list[Any] | None = None  # [entity, start, end, [probs]]

    def close() -> None:
        if current is None:
            return
        entity, start, end, ps = current
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append(ModelSpan(entity, start, end, sum(ps) / len(ps)))

    for tag, p, (a, b) in zip(tags, probs, offsets, strict=False):
        if tag == "O" or len(tag) < 3:
            close()
            current = None
            continue
        kind = tag[2:]
        if tag.startswith("I-") and current is not None and current[0] == kind:
            current[2] = max(current[2], b)
            current[3].append(p)
            continue
        close()
        current = [kind, a, b, [p]]
    close()
    return spans


def _same_kind(a: str, b: str) -> bool:
    """Both ASCII letters, or both digits: BPE pieces of one word or one number."""
    return (a.isascii() and a.isalpha() and b.isascii() and b.isalpha()) or (a.isdigit() and b.isdigit())


def _word_level(
    tags: Sequence[str], probs: Sequence[float], offsets: Sequence[tuple[int, int]], text: str
) -> tuple[list[str], list[float]]:
    """Give every BPE piece of a word the tag of the word's first piece.

    The slot head tags pieces; a word split into ``L`` + ``indsey`` must not come out as two
    entities. Pieces belong to one word when they touch without a space and continue the same
    run of letters or digits, or when they share a character (bytes of one Chinese character).
    """
    out_tags, out_probs = list(tags), list(probs)
    n = min(len(tags), len(offsets))
    for i in range(1, n):
        a, b = offsets[i]
        pa, pb = offsets[i - 1]
        if b <= a or pb <= pa:
            continue
        joined = a < pb or (a == pb and not text[a].isspace() and _same_kind(text[pb - 1], text[a]))
        if not joined:
            continue
        head = out_tags[i - 1]
        out_tags[i] = "O" if head == "O" else f"I-{head[2:]}"
        out_probs[i] = out_probs[i - 1]
    return out_tags, out_probs


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


class MicroBatcher:
    """Run ``fn(list_of_inputs) -> list_of_outputs`` for many threads in shared batches.

    :param fn: the batched function (one forward pass).
    :param max_batch: most inputs per call; PERFORMANCE-NOTES found 32 best on 2 cores.
    """

    def __init__(
        self, fn: Callable[[list[Any]], list[Any]], *, max_batch: int = 32, name: str = "nlu"
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Any, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"{name}-batcher", daemon=True)
        self._closed = False
        self._put_lock = threading.Lock()
        self._thread.start()

    def __call__(self, item: Any, timeout: float | None = 30.0) -> Any:
        """The output for one input (blocks until its batch ran). After :meth:`close`, runs alone."""
        future: Future[Any] = Future()
        with self._put_lock:  # nothing may be queued behind the stop marker
            closed = self._closed
            if not closed:
                self._queue.put((item, future))
        if closed:
            return self.fn([item])[0]
        return future.result(timeout)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                results = self.fn([item for item, _ in batch])
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
            except BaseException as exc:  # every waiter must hear about the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            if stop:
                return

    def close(self) -> None:
        """Finish queued work and stop the thread; later calls run unbatched in the caller."""
        with self._put_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=30)


__all__ = [
    "NLU_FILE",
    "PATTERNS_FILE",
    "JointPredictor",
    "MicroBatcher",
    "ModelSpan",
    "RawPrediction",
    "decode_bio",
]
