"""Evaluation metrics against hand-computed values, reports and plots, and evaluate_model()."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from gpt2_agent.modeling import ModelSpec, build_model
from gpt2_agent.training.encoding import Example, Span, tags_to_spans, token_tags
from gpt2_agent.training.evaluate import (
    calibration,
    classification_metrics,
    evaluate_model,
    perplexity_metrics,
    span_metrics,
    write_report,
)
from gpt2_agent.training.tokenizer import train_tokenizer


def test_classification_metrics_by_hand() -> None:
    y = [0, 0, 1, 1, 1]
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    m = classification_metrics(y, probs, ["reject", "approve"], bins=5)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["per_class"]["approve"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }
    assert m["per_class"]["reject"]["recall"] == pytest.approx(0.5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.7, 0.4])))


def test_roc_auc_is_none_with_one_class_present() -> None:
    m = classification_metrics([1, 1], np.array([[0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
    assert m["roc_auc"] is None


def test_multiclass_roc_auc() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    probs = rng.dirichlet(np.ones(3), size=30)
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))


def test_expected_calibration_error() -> None:
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1.0, 1.0, 1.0, 0.0])
    result = calibration(conf, correct, bins=10)
    # two bins: |1.0 - 0.95| and |0.5 - 0.55|, each holding half the examples
    assert result["ece"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert sum(b["count"] for b in result["bins"]) == 4


def test_span_metrics() -> None:
    gold = [[Span("amount", 0, 3), Span("order_no", 5, 9)], []]
    pred = [[Span("amount", 0, 3), Span("order_no", 5, 8)], [Span("amount", 1, 2)]]
    m = span_metrics(gold, pred)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 2)
    assert m["per_type"]["amount"]["precision"] == pytest.approx(0.5)


@pytest.mark.parametrize("text", ["pay 订单 A-17 now", "金额 ￥1,299.00 please", "order A-17"])
def test_bio_tags_round_trip_through_offsets(text: str) -> None:
    tok = train_tokenizer(iter(["pay 订单 A-17 now", "金额 ￥1,299.00 please"] * 5), vocab_size=300)
    value = "A-17" if "A-17" in text else "￥1,299.00"
    start = text.index(value)
    entity = Span("x", start, start + len(value))
    offsets = tok(text, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    tags = token_tags(offsets, [entity])
    assert tags.count("B-x") == 1 and tags[0] in ("O", "B-x")
    assert tags_to_spans(tags, offsets, text) == [entity]


def test_perplexity() -> None:
    assert perplexity_metrics(np.log(20.0), 10)["perplexity"] == pytest.approx(20.0)


def test_report_writes_json_and_pngs(tmp_path: Path) -> None:
    jsonl = tmp_path / "metrics.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"step": i, "split": "train", "loss": 1 / i}) + "\n" for i in range(1, 30))
    )
    m = classification_metrics([0, 1, 1], np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
    m["nan_value"] = float("nan")
    written = write_report(m, tmp_path / "out", metrics_jsonl=jsonl)
    names = {p.name for p in written}
    assert names == {"metrics.json", "loss.png", "confusion_matrix.png", "reliability.png"}
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["nan_value"] is None


def test_evaluate_model_folder(tmp_path: Path) -> None:
    texts = [f"order {i} {'ok' if i % 2 else 'fraud'}" for i in range(40)]
    tok = train_tokenizer(iter(texts), vocab_size=300)
    torch.manual_seed(0)
    model = build_model(
        ModelSpec(task="sequence_classification", n_layer=1, n_embd=16, n_head=2, context=32),
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        labels=["fraud", "ok"],
    )
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = [Example(text=t, label="ok" if i % 2 else "fraud") for i, t in enumerate(texts)]
    metrics = evaluate_model(tmp_path / "m", data, out_dir=tmp_path / "report")
    assert metrics["task"] == "sequence_classification" and metrics["n_examples"] == 40
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()
    with pytest.raises(TypeError, match="labelled"):
        evaluate_model(tmp_path / "m", texts)


def test_evaluate_language_model_folder(tmp_path: Path) -> None:
    texts = [f"订单 {i} 已发货 shipped" for i in range(60)]
    tok = train_tokenizer(iter(texts), vocab_size=300)
    torch.manual_seed(0)
    model = build_model(
        ModelSpec(task="causal_lm", n_layer=1, n_embd=16, n_head=2, context=16), vocab_size=len(tok)
    )
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    metrics = evaluate_model(tmp_path / "lm", texts)
    assert metrics["task"] == "causal_lm" and metrics["perplexity"] > 1 and metrics["n_tokens"] > 0


def test_load_eval_examples_from_files(tmp_path: Path) -> None:
    from gpt2_agent.training.datasets import DatasetError, load_eval_examples

    csv = tmp_path / "eval.csv"
    csv.write_text("text,label\norder 1 ok,ok\norder 2 fraud,fraud\n", encoding="utf-8")
    examples = load_eval_examples(csv, task="sequence_classification")
    assert examples == [Example(text="order 1 ok", label="ok"), Example(text="order 2 fraud", label="fraud")]
    jsonl = tmp_path / "nlu.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "text": "pay A-1",
                "intent": "order_payment",
                "entities": [{"entity": "order_no", "value": "A-1"}],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    nlu = load_eval_examples(jsonl, task="joint_nlu", label_field="intent")
    assert nlu[0] == Example(text="pay A-1", label="order_payment", entities=(Span("order_no", 4, 7),))
    assert load_eval_examples(csv, task="causal_lm") == ["order 1 ok", "order 2 fraud"]
    with pytest.raises(DatasetError, match="format"):
        load_eval_examples(tmp_path / "x.txt", task="causal_lm")
