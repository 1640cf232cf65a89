"""Scores of a parser on labelled examples: intent accuracy and seqeval-style entity span F1.

Span F1 counts an entity as correct only when type, start and end all match the gold span
(what ``seqeval`` computes from BIO tags in its default mode, here on character spans so the
score does not depend on the tokenizer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from gpt2_agent.nlu.format import NluExample


class BatchParser(Protocol):
    def parse_batch(self, texts: Sequence[str], *, expected: str | None = None) -> list[dict[str, Any]]: ...


def span_f1(
    gold: Iterable[Iterable[tuple[str, int, int]]], pred: Iterable[Iterable[tuple[str, int, int]]]
) -> dict[str, Any]:
    """Micro precision/recall/F1 over exact ``(entity, start, end)`` spans, plus per entity type."""
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold]
    for g_row, p_row in zip(gold, pred, strict=True):
        g, p = set(g_row), set(p_row)
        for kind, *_ in g | p:
            counts.setdefault(kind, [0, 0, 0])
        for kind, *_ in g & p:
            counts[kind][0] += 1
        for kind, *_ in p:
            counts[kind][1] += 1
        for kind, *_ in g:
            counts[kind][2] += 1
    tp, n_pred, n_gold = (sum(v[i] for v in counts.values()) for i in range(3))
    return {
        **_prf(tp, n_pred, n_gold),
        "per_type": {k: {**_prf(*v), "support": v[2]} for k, v in sorted(counts.items())},
    }


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else (1.0 if not n_gold else 0.0)
    recall = tp / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate_parser(
    parser: BatchParser, examples: Sequence[NluExample], *, batch_size: int = 64
) -> dict[str, Any]:
    """Intent accuracy, span F1 and value accuracy of ``parser`` on ``examples``, with the errors."""
    parses: list[dict[str, Any]] = []
    for i in range(0, len(examples), batch_size):
        parses.extend(parser.parse_batch([ex.text for ex in examples[i : i + batch_size]]))
    correct = 0
    per_intent: dict[str, list[int]] = {}
    errors = []
    gold_spans, pred_spans = [], []
    for ex, parse in zip(examples, parses, strict=True):
        predicted = parse["intent"]["name"]
        ok = predicted == ex.intent
        correct += ok
        bucket = per_intent.setdefault(ex.intent, [0, 0])
        bucket[0] += ok
        bucket[1] += 1
        gold = {(e.entity, e.start, e.end) for e in ex.entities}
        pred = {(e["entity"], e["start"], e["end"]) for e in parse["entities"]}
        gold_spans.append(gold)
        pred_spans.append(pred)
        if not ok or gold != pred:
            errors.append(
                {
                    "text": ex.text,
                    "intent": ex.intent,
                    "predicted": predicted,
                    "confidence": parse["intent"]["confidence"],
                    "missed": sorted(f"{k}:{ex.text[s:e]}" for k, s, e in gold - pred),
                    "spurious": sorted(f"{k}:{ex.text[s:e]}" for k, s, e in pred - gold),
                }
            )
    spans = span_f1(gold_spans, pred_spans)
    n = len(examples)
    return {
        "n_examples": n,
        "intent_accuracy": correct / n if n else 0.0,
        "slot_precision": spans["precision"],
        "slot_recall": spans["recall"],
        "slot_f1": spans["f1"],
        "per_intent_accuracy": {k: v[0] / v[1] for k, v in sorted(per_intent.items())},
        "per_entity": spans["per_type"],
        "errors": errors,
    }


def examples_hash(examples: Iterable[NluExample]) -> str:
    """SHA-256 over texts, intents and spans: the identity of an evaluation set."""
    digest = hashlib.sha256()
    for ex in examples:
        spans = ";".join(f"{e.entity}:{e.start}:{e.end}" for e in ex.entities)
        digest.update(f"{ex.intent}\x1f{ex.text}\x1f{spans}\x1e".encode())
    return digest.hexdigest()


__all__ = ["evaluate_parser", "examples_hash", "span_f1"]
