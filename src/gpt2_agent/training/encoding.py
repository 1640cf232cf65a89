"""Examples → token ids and label ids, the same way for training, evaluation and serving.

Classification: ``tokenizer(text, truncation=True, max_length=context)``, nothing appended; the
model reads the last real token. Tagging: every token whose character span overlaps an entity
gets ``B-<type>`` (the first one) or ``I-<type>``, everything else ``O``; predicted tags map back
to character spans through the tokenizer's offsets (:func:`tags_to_spans`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpt2_agent.modeling.losses import IGNORE_INDEX

OUTSIDE = "O"


@dataclass(frozen=True)
class Span:
    """An entity: ``text[start:end]`` is of type ``entity``."""

    entity: str
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    """One labelled text. ``label`` is a class (or intent) name; ``entities`` are slot spans."""

    text: str
    label: str | None = None
    entities: tuple[Span, ...] = field(default=())
    key: str | None = None


def label_list(examples: Iterable[Example], *, given: Sequence[str] = ()) -> list[str]:
    """``given`` labels first (fixing their ids), then any other label seen, sorted."""
    seen = {ex.label for ex in examples if ex.label is not None}
    return [*given, *sorted(seen - set(given))]


def bio_labels(entity_types: Iterable[str]) -> list[str]:
    """``["O", "B-amount", "I-amount", ...]`` for the sorted entity types."""
    out = [OUTSIDE]
    for kind in sorted(set(entity_types)):
        out += [f"B-{kind}", f"I-{kind}"]
    return out


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[Any]]:
    """Token ids (truncated to ``max_length``) and character offsets of each text."""
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        add_special_tokens=False,
        return_offsets_mapping=True,
    )
    ids = [list(x) for x in enc["input_ids"]]
    # An empty text still needs one position for the classifier to read.
    for row in ids:
        if not row:
            row.append(int(tokenizer.eos_token_id))
    return ids, list(enc["offset_mapping"])


def classification_features(
    tokenizer: Any, examples: Sequence[Example], labels: Sequence[str], max_length: int
) -> dict[str, list[Any]]:
    """``{"input_ids", "labels"}`` for a sequence classifier."""
    index = {name: i for i, name in enumerate(labels)}
    ids, _ = encode_texts(tokenizer, [ex.text for ex in examples], max_length)
    return {"input_ids": ids, "labels": [index[str(ex.label)] for ex in examples]}


def token_tags(offsets: Sequence[tuple[int, int]], entities: Sequence[Span]) -> list[str]:
    """BIO tag of every token given its character ``offsets``."""
    tags = [OUTSIDE] * len(offsets)
    for span in sorted(entities, key=lambda s: s.start):
        first = True
        for i, (a, b) in enumerate(offsets):
            if b > span.start and a < span.end and b > a:
                tags[i] = f"{'B' if first else 'I'}-{span.entity}"
                first = False
    return tags


def tagging_features(
    tokenizer: Any,
    examples: Sequence[Example],
    slot_labels: Sequence[str],
    max_length: int,
    *,
    intents: Sequence[str] | None = None,
) -> dict[str, list[Any]]:
    """Features for a token classifier (``labels``) or, given ``intents``, the joint NLU model
    (``intent_labels`` + ``slot_labels``). Unknown entity types are tagged ``O``."""
    index = {name: i for i, name in enumerate(slot_labels)}
    ids, offsets = encode_texts(tokenizer, [ex.text for ex in examples], max_length)
    tag_ids = []
    for ex, row, offs in zip(examples, ids, offsets, strict=True):
        tags = token_tags(list(offs), ex.entities) if offs else []
        tag_row = [index.get(t, index[OUTSIDE]) for t in tags]
        tag_row += [IGNORE_INDEX] * (len(row) - len(tag_row))  # the EOS stand-in of an empty text
        tag_ids.append(tag_row)
    if intents is None:
        return {"input_ids": ids, "labels": tag_ids}
    intent_index = {name: i for i, name in enumerate(intents)}
    return {
        "input_ids": ids,
        "intent_labels": [intent_index[str(ex.label)] for ex in examples],
        "slot_labels": tag_ids,
    }


def tags_to_spans(tags: Sequence[str], offsets: Sequence[tuple[int, int]], text: str) -> list[Span]:
    """Character spans from per-token BIO tags (an ``I-x`` after something else starts a span)."""
    spans: list[Span] = []
    current: list[Any] | None = None
    for tag, (a, b) in zip(tags, offsets, strict=False):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        continues = current is not None and tag.startswith("I-") and kind == current[0]
        if continues:
            assert current is not None
            current[2] = max(current[2], b)
            continue
        if current is not None:
            spans.append(_trimmed(current, text))
            current = None
        if kind is not None:
            current = [kind, a, b]
    if current is not None:
        spans.append(_trimmed(current, text))
    return [s for s in spans if s.end > s.start]


def _trimmed(span: list[Any], text: str) -> Span:
    kind, start, end = span
    while start < end and text[start].isspace():  # byte-level tokens carry their leading space
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(kind, start, end)


__all__ = [
    "OUTSIDE",
    "Example",
    "Span",
    "bio_labels",
    "classification_features",
    "encode_texts",
    "label_list",
    "tagging_features",
    "tags_to_spans",
    "token_tags",
]
