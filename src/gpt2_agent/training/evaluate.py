"""Evaluation: classifier, tagger, joint NLU and language-model metrics, ``metrics.json`` and plots.

Metric names are flat at the top level so the registry's promotion gate finds them:
classifiers report ``accuracy``, ``precision``/``recall``/``f1`` (macro), ``roc_auc``, ``ece``
and ``loss``; taggers report span-level ``precision``/``recall``/``f1`` (exact type and
boundaries, like seqeval); the joint NLU model reports ``intent_*`` and ``slot_*``; language
models report ``loss`` and ``perplexity``. Details (per-class scores, the confusion matrix,
calibration bins) sit beside them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from gpt2_agent.modeling import causal_lm_loss, load_model, task_of
from gpt2_agent.modeling.losses import IGNORE_INDEX
from gpt2_agent.training.batches import Batch, TensorBatches
from gpt2_agent.training.encoding import (
    OUTSIDE,
    Example,
    Span,
    classification_features,
    encode_texts,
    tagging_features,
    tags_to_spans,
)
from gpt2_agent.training.plots import plot_confusion_matrix, plot_loss_curves, plot_reliability

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


# --- pure metrics ------------------------------------------------------------------------------
def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error over ``bins`` equal-width confidence bins, and the bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    out_bins = []
    ece = 0.0
    n = max(len(confidence), 1)
    for i in range(bins):
        lower, upper = edges[i], edges[i + 1]
        inside = (
            (confidence > lower) & (confidence <= upper)
            if i
            else (confidence >= lower) & (confidence <= upper)
        )
        count = int(inside.sum())
        acc = float(correct[inside].mean()) if count else 0.0
        conf = float(confidence[inside].mean()) if count else 0.0
        ece += count / n * abs(acc - conf)
        out_bins.append(
            {
                "lower": float(lower),
                "upper": float(upper),
                "count": count,
                "accuracy": acc,
                "confidence": conf,
            }
        )
    return {"ece": float(ece), "bins": out_bins}


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, labels: Sequence[str], *, bins: int = 10
) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1, ROC-AUC, confusion matrix, ECE, loss."""
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y) == 0:
        raise ValueError("cannot evaluate on no examples")
    k = len(labels)
    pred = probs.argmax(axis=1)
    ids = list(range(k))
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    macro = precision_recall_fscore_support(y, pred, labels=ids, average="macro", zero_division=0)
    picked = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    calib = calibration(probs.max(axis=1), (pred == y).astype(np.float64), bins)
    return {
        "n_examples": len(y),
        "accuracy": float((pred == y).mean()),
        "precision": float(macro[0]),
        "recall": float(macro[1]),
        "f1": float(macro[2]),
        "roc_auc": _roc_auc(y, probs, k),
        "ece": calib["ece"],
        "loss": float(-np.log(picked).mean()),
        "labels": list(labels),
        "per_class": {
            name: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=ids).tolist(),
        "calibration": calib,
    }


def _roc_auc(y: np.ndarray, probs: np.ndarray, k: int) -> float | None:
    present = set(np.unique(y).tolist())
    try:
        if k == 2:
            return float(roc_auc_score(y, probs[:, 1])) if len(present) == 2 else None
        if len(present) == k:
            return float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(k))))
    except ValueError:
        return None
    return None


def span_metrics(true: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> dict[str, Any]:
    """Micro precision/recall/F1 over exact (type, start, end) spans, plus per type."""
    kinds: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold]
    for gold_spans, pred_spans in zip(true, pred, strict=True):
        gold = {(s.entity, s.start, s.end) for s in gold_spans}
        guess = {(s.entity, s.start, s.end) for s in pred_spans}
        for kind, *_ in gold | guess:
            kinds.setdefault(kind, [0, 0, 0])
        for item in gold & guess:
            kinds[item[0]][0] += 1
        for item in guess:
            kinds[item[0]][1] += 1
        for item in gold:
            kinds[item[0]][2] += 1
    tp, n_pred, n_gold = (sum(v[i] for v in kinds.values()) for i in range(3))
    return {
        **_prf(tp, n_pred, n_gold),
        "per_type": {kind: {**_prf(*v), "support": v[2]} for kind, v in sorted(kinds.items())},
    }


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def perplexity_metrics(loss: float, n_tokens: int) -> dict[str, Any]:
    """``loss`` (mean next-token cross-entropy, nats) and ``perplexity``."""
    return {"loss": float(loss), "perplexity": float(math.exp(min(loss, 700.0))), "n_tokens": int(n_tokens)}


# --- running models ----------------------------------------------------------------------------
# What a batch passes to the model when predicting (labels stay out).
MODEL_INPUTS = frozenset({"input_ids", "attention_mask", "sparse_ids", "sparse_weights"})


def _batches(features: Mapping[str, Sequence[Any]], pad_token_id: int, batch_size: int) -> TensorBatches:
    return TensorBatches(features, batch_size=batch_size, pad_token_id=pad_token_id, shuffle=False)


@torch.no_grad()
def classifier_probabilities(model: Any, batches: Iterable[Batch]) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities and true label ids of a sequence classifier over ``batches``."""
    model.eval()
    probs, labels = [], []
    for batch in batches:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        probs.append(torch.softmax(out.logits.float(), dim=-1).numpy())
        labels.append(batch["labels"].numpy())
    return np.concatenate(probs), np.concatenate(labels)


def evaluate_classifier(
    model: Any, tokenizer: Any, examples: Sequence[Example], *, batch_size: int = 64, bins: int = 10
) -> dict[str, Any]:
    """Metrics of a ``GPT2ForSequenceClassification`` on labelled ``examples``."""
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    features = classification_features(tokenizer, examples, labels, model.config.n_positions)
    probs, y = classifier_probabilities(model, _batches(features, tokenizer.pad_token_id, batch_size))
    return classification_metrics(y, probs, labels, bins=bins)


@torch.no_grad()
def _predict_tags(
    model: Any, batches: TensorBatches, key: str
) -> tuple[list[list[int]], list[list[int]], Any]:
    """Per-example predicted tag ids (at labelled positions only), gold tag ids, intent outputs."""
    model.eval()
    preds, golds, intents = [], [], []
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        out = model(**inputs)
        logits = out.slot_logits if key == "slot_labels" else out.logits
        argmax = logits.argmax(-1)
        for row_pred, row_gold, mask in zip(argmax, batch[key], batch["attention_mask"], strict=True):
            n = int(mask.sum())
            preds.append(row_pred[:n].tolist())
            golds.append(row_gold[:n].tolist())
        if key == "slot_labels":
            intents.append(
                (torch.softmax(out.intent_logits.float(), -1).numpy(), batch["intent_labels"].numpy())
            )
    return preds, golds, intents


def _spans(
    tag_rows: Sequence[Sequence[int]],
    slot_labels: Sequence[str],
    offsets: Sequence[Any],
    texts: Sequence[str],
) -> list[list[Span]]:
    out = []
    for row, offs, text in zip(tag_rows, offsets, texts, strict=True):
        tags = [slot_labels[t] if t != IGNORE_INDEX else OUTSIDE for t in row]
        out.append(tags_to_spans(tags, list(offs), text))
    return out


def evaluate_tagger(
    model: Any, tokenizer: Any, examples: Sequence[Example], *, batch_size: int = 64, bins: int = 10
) -> dict[str, Any]:
    """Span F1 of a token classifier, or intent + slot metrics of the joint NLU model."""
    joint = task_of(model) == "joint_nlu"
    slot_labels = (
        list(model.config.slot_labels)
        if joint
        else [model.config.id2label[i] for i in range(model.config.num_labels)]
    )
    intents = list(model.config.intent_labels) if joint else None
    max_length = model.config.n_positions
    features = tagging_features(tokenizer, examples, slot_labels, max_length, intents=intents)
    if joint and model.featurizer is not None:
        features.update(model.featurizer.features([ex.text for ex in examples]))
    key = "slot_labels" if joint else "labels"
    preds, golds, intent_out = _predict_tags(
        model, _batches(features, tokenizer.pad_token_id, batch_size), key
    )
    texts = [ex.text for ex in examples]
    _, offsets = encode_texts(tokenizer, texts, max_length)
    gold_spans = _spans(golds, slot_labels, offsets, texts)
    pred_spans = _spans(preds, slot_labels, offsets, texts)
    spans = span_metrics(gold_spans, pred_spans)
    flat_gold = [g for row in golds for g in row if g != IGNORE_INDEX]
    flat_pred = [
        p
        for prow, grow in zip(preds, golds, strict=True)
        for p, g in zip(prow, grow, strict=True)
        if g != IGNORE_INDEX
    ]
    token_acc = float(np.mean(np.asarray(flat_gold) == np.asarray(flat_pred))) if flat_gold else 0.0
    if not joint:
        return {"n_examples": len(examples), **spans, "token_accuracy": token_acc, "labels": slot_labels}
    assert intents is not None
    probs = np.concatenate([p for p, _ in intent_out])
    y = np.concatenate([t for _, t in intent_out])
    intent = classification_metrics(y, probs, intents, bins=bins)
    return {
        "n_examples": len(examples),
        "intent_accuracy": intent["accuracy"],
        "intent_f1": intent["f1"],
        "intent_roc_auc": intent["roc_auc"],
        "intent_ece": intent["ece"],
        "slot_precision": spans["precision"],
        "slot_recall": spans["recall"],
        "slot_f1": spans["f1"],
        "slot_token_accuracy": token_acc,
        "loss": intent["loss"],
        "intent": intent,
        "slots": {**spans, "labels": slot_labels},
        "labels": intents,
        "confusion_matrix": intent["confusion_matrix"],
        "calibration": intent["calibration"],
    }


@torch.no_grad()
def evaluate_lm(model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
    """Token-weighted next-token loss and perplexity of a causal LM."""
    model.eval()
    total, n_tokens = 0.0, 0
    for batch in batches:
        labels = batch["labels"]
        n = int((labels != IGNORE_INDEX).sum())
        loss = causal_lm_loss(model, batch["input_ids"], labels)
        total += float(loss) * n
        n_tokens += n
    if n_tokens == 0:
        raise ValueError("cannot evaluate a language model on no tokens")
    return perplexity_metrics(total / n_tokens, n_tokens)


# --- reports -----------------------------------------------------------------------------------
def write_report(
    metrics: Mapping[str, Any],
    out_dir: str | Path,
    *,
    plots: bool = True,
    metrics_jsonl: str | Path | None = None,
    plots_dir: str | Path | None = None,
) -> list[Path]:
    """Write ``metrics.json`` to ``out_dir`` and the PNG plots (to ``plots_dir``, default the same)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / METRICS_FILE]
    (out / METRICS_FILE).write_text(
        json.dumps(_finite(metrics), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    if not plots:
        return written
    pdir = Path(plots_dir) if plots_dir is not None else out
    if metrics_jsonl is not None and Path(metrics_jsonl).is_file():
        written.append(plot_loss_curves(metrics_jsonl, pdir / "loss.png"))
    if "confusion_matrix" in metrics and "labels" in metrics:
        written.append(
            plot_confusion_matrix(
                metrics["confusion_matrix"], metrics["labels"], pdir / "confusion_matrix.png"
            )
        )
    if "calibration" in metrics:
        written.append(plot_reliability(metrics["calibration"], pdir / "reliability.png"))
    return written


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def evaluate_model(
    model_dir: str | Path,
    data: Sequence[Example] | Sequence[str],
    *,
    batch_size: int = 64,
    out_dir: str | Path | None = None,
    plots: bool = True,
    bins: int = 10,
) -> dict[str, Any]:
    """Evaluate a saved model folder (weights + tokenizer) on ``data``.

    :param data: labelled :class:`Example` objects (classifiers, taggers, joint NLU) or plain
        texts (language models). :func:`gpt2_agent.training.datasets.load_eval_examples` reads
        them from a file, a source table or the warehouse.
    :param out_dir: if given, ``metrics.json`` and the plots are written there.
    """
    from gpt2_agent.training.shards import BlockBatches, BlockStream, write_shards
    from gpt2_agent.training.tokenizer import load_tokenizer

    folder = Path(model_dir)
    model = load_model(folder)
    tokenizer = load_tokenizer(folder)
    task = task_of(model)
    if task == "sequence_classification":
        metrics = evaluate_classifier(model, tokenizer, _examples(data), batch_size=batch_size, bins=bins)
    elif task in ("token_classification", "joint_nlu"):
        metrics = evaluate_tagger(model, tokenizer, _examples(data), batch_size=batch_size, bins=bins)
    else:
        import tempfile

        texts = [d.text if isinstance(d, Example) else str(d) for d in data]
        with tempfile.TemporaryDirectory() as tmp:
            write_shards(texts, tokenizer, Path(tmp) / "eval")
            stream = BlockStream(Path(tmp) / "eval", block_size=model.config.n_positions, shuffle=False)
            metrics = evaluate_lm(model, BlockBatches(stream, min(batch_size, len(stream))))
    metrics = {"task": task, **metrics}
    if out_dir is not None:
        write_report(metrics, out_dir, plots=plots)
    return metrics


def _examples(data: Sequence[Example] | Sequence[str]) -> list[Example]:
    examples = [d for d in data if isinstance(d, Example)]
    if len(examples) != len(data):
        raise TypeError("classifiers and taggers are evaluated on labelled Example objects")
    if not examples:
        raise ValueError("cannot evaluate on no examples")
    return examples


__all__ = [
    "METRICS_FILE",
    "calibration",
    "classification_metrics",
    "classifier_probabilities",
    "evaluate_classifier",
    "evaluate_lm",
    "evaluate_model",
    "evaluate_tagger",
    "perplexity_metrics",
    "span_metrics",
    "write_report",
]
