"""The whole pipeline at toy size on the demo warehouse: train, evaluate, register, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gpt2_agent.config import Settings
from gpt2_agent.demo import generate_warehouse
from gpt2_agent.registry import Registry
from gpt2_agent.store import Database
from gpt2_agent.store.training_tables import TrainingMetric, TrainingRun
from gpt2_agent.training import DatasetError, train_from_config
from gpt2_agent.training.callbacks import read_jsonl
from gpt2_agent.training.tokenizer import load_tokenizer

TINY_MODEL = {"n_layer": 1, "n_embd": 32, "n_head": 2, "context": 64}
TINY_TRAIN = {"lr": 3e-3, "batch_size": 32, "warmup_steps": 2, "precision": "fp32", "threads": 1}


def _audit_config(**train: Any) -> dict[str, Any]:
    return {
        "name": "audit-test",
        "data": {"dataset": "order_audit", "limit": 600},
        "tokenizer": {"vocab_size": 400},
        "model": {"task": "sequence_classification", **TINY_MODEL},
        "train": {**TINY_TRAIN, "max_steps": 12, "eval_every": 6, "checkpoint_every": 6, **train},
        "eval": {"batch_size": 64},
        "register": {"enabled": True, "name": "order-audit", "alias": "candidate"},
    }


@pytest.fixture
def warehouse(settings: Settings) -> str:
    settings.home.mkdir(parents=True, exist_ok=True)
    generate_warehouse(settings.warehouse_url, orders=800, seed=1)
    return settings.warehouse_url


def test_order_audit_end_to_end(settings: Settings, database: Database, warehouse: str) -> None:
    result = train_from_config(_audit_config(), settings, db=database, progress=False)
    assert result.fit.steps == 12 and result.registered_version == 1
    files = {p.name for p in result.model_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "labels.json",
        "metrics.json",
        "lineage.json",
        "eval_sample.json",
    } <= files
    metrics = json.loads((result.model_dir / "metrics.json").read_text())
    assert {"accuracy", "roc_auc", "f1", "ece", "confusion_matrix", "per_class"} <= set(metrics)
    assert json.loads((result.model_dir / "labels.json").read_text()) == ["reject", "approve"]
    lineage = json.loads((result.model_dir / "lineage.json").read_text())
    assert lineage["dataset_hash"] and lineage["eval_set_hash"] == metrics["eval_set_hash"]
    assert lineage["config"]["train"]["max_steps"] == 12
    for png in ("loss.png", "confusion_matrix.png", "reliability.png"):
        assert (result.output_dir / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    # The held-out sample that serving checks cheaper precisions on: test-split texts, labelled.
    sample = json.loads((result.model_dir / "eval_sample.json").read_text())
    assert len(sample["texts"]) == len(sample["labels"]) == min(256, metrics["n_examples"]) > 0
    assert set(sample["labels"]) == {"reject", "approve"}

    registry = Registry(settings, database)
    version = registry.resolve("order-audit:candidate")
    assert version.version == 1 and version.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert version.eval_set_hash == metrics["eval_set_hash"]

    with database.session() as s:
        run = s.scalar(select(TrainingRun).where(TrainingRun.id == result.run_id))
        assert run is not None and run.status == "succeeded" and run.registered_version == 1
        assert run.finished_at is not None and run.metrics and "accuracy" in run.metrics
        steps = s.scalars(
            select(TrainingMetric.step)
            .where(TrainingMetric.run_id == run.id, TrainingMetric.name == "loss")
            .where(TrainingMetric.split == "train")
            .order_by(TrainingMetric.step)
        ).all()
        assert list(steps) == list(range(1, 13))
        vals = s.scalar(
            select(func.count()).where(TrainingMetric.run_id == run.id, TrainingMetric.split == "val")
        )
        assert vals and vals >= 2 * 3  # two evaluations, loss/accuracy/f1 at least


def test_rerun_resumes_the_same_run(settings: Settings, database: Database, warehouse: str) -> None:
    first = train_from_config(_audit_config(max_steps=6), settings, db=database, progress=False)
    second = train_from_config(
        _audit_config(max_steps=6),
        settings,
        db=database,
        progress=False,
        overrides=["train.max_steps=12", "eval.check_sample=0"],
    )
    assert second.fit.resumed_from == 6 and second.fit.steps == 12
    assert not (second.model_dir / "eval_sample.json").exists()  # no training texts in the artifact
    assert second.run_id == first.run_id and second.registered_version == 2
    records = read_jsonl(second.output_dir / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 13))


def test_one_class_is_refused_before_training(settings: Settings, database: Database, tmp_path: Path) -> None:
    data = tmp_path / "one.csv"
    data.write_text(
        "text,label\n" + "".join(f"order {i} fine,approve\n" for i in range(50)), encoding="utf-8"
    )
    config = _audit_config()
    config["data"] = {"dataset": "records", "source": {"kind": "csv", "path": str(data)}}
    with pytest.raises(DatasetError, match=r"1 class\(es\) \['approve'\]"):
        train_from_config(config, settings, db=database, progress=False)
    with database.session() as s:
        run = s.scalars(select(TrainingRun)).one()
        assert run.status == "failed" and "1 class(es)" in (run.error or "")
    assert not (settings.home / "runs" / "audit-test" / "checkpoints").exists()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_empty_data_is_refused(settings: Settings, database: Database, tmp_path: Path) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text("", encoding="utf-8")
    config = _audit_config()
    config["data"] = {"dataset": "records", "source": {"kind": "jsonl", "path": str(data)}}
    with pytest.raises(DatasetError, match="no training examples"):
        train_from_config(config, settings, db=database, progress=False)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_domain_pretraining_then_fine_tuning(settings: Settings, database: Database, warehouse: str) -> None:
    lm_config = {
        "name": "lm-test",
        "data": {"dataset": "warehouse_corpus", "val_fraction": 0.1, "test_fraction": 0.1},
        "tokenizer": {"vocab_size": 400},
        "model": {"task": "causal_lm", **TINY_MODEL},
        "train": {**TINY_TRAIN, "batch_size": 8, "max_steps": 10, "eval_every": 5},
        "register": {"enabled": True, "name": "company-lm"},
    }
    lm = train_from_config(lm_config, settings, db=database, progress=False)
    assert lm.metrics["perplexity"] > 1 and (lm.output_dir / "data" / "train" / "index.json").is_file()
    records = read_jsonl(lm.output_dir / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "val"] == [5, 10]

    config = _audit_config(max_steps=4)
    config["name"] = "audit-from-lm"
    config["model"]["init_from"] = "registry:company-lm:candidate"
    config["model"]["n_layer"] = 3  # ignored: the checkpoint's shape wins
    clf = train_from_config(config, settings, db=database, progress=False)
    lineage = json.loads((clf.model_dir / "lineage.json").read_text())
    assert lineage["init_from"].endswith("company-lm/1")
    # The fine-tuned model speaks the LM's tokens.
    assert load_tokenizer(clf.model_dir).get_vocab() == load_tokenizer(lm.model_dir).get_vocab()
    cfg = json.loads((clf.model_dir / "config.json").read_text())
    assert cfg["n_layer"] == 1 and cfg["architectures"] == ["GPT2ForSequenceClassification"]


def _nlu_file(path: Path) -> Path:
    rows = []
    for i in range(120):
        amount = f"{100 + i}.00"
        if i % 3 == 0:
            text = f"please pay order A-{i} amount {amount}"
            ents = [{"entity": "order_no", "value": f"A-{i}"}, {"entity": "amount", "value": amount}]
            rows.append({"text": text, "intent": "order_payment", "entities": ents})
        elif i % 3 == 1:
            text = f"审核订单 A-{i}"
            rows.append(
                {
                    "text": text,
                    "intent": "order_audit",
                    "entities": [{"entity": "order_no", "start": 5, "end": len(text)}],
                }
            )
        else:
            rows.append({"text": "你好" if i % 2 else "hello there", "intent": "greet", "entities": []})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("task", ["joint_nlu", "token_classification"])
def test_nlu_models(settings: Settings, database: Database, tmp_path: Path, task: str) -> None:
    config = {
        "name": f"nlu-{task}",
        "data": {
            "dataset": "nlu",
            "label_field": "intent",
            "source": {"kind": "jsonl", "path": str(_nlu_file(tmp_path / "nlu.jsonl"))},
        },
        "tokenizer": {"vocab_size": 300},
        "model": {"task": task, **TINY_MODEL},
        "train": {**TINY_TRAIN, "max_steps": 40, "batch_size": 16, "eval_every": 20},
    }
    result = train_from_config(config, settings, db=database, progress=False)
    m = result.metrics
    if task == "joint_nlu":
        assert m["intent_accuracy"] > 0.8 and 0 <= m["slot_f1"] <= 1
        heads = json.loads((result.model_dir / "heads.json").read_text())
        assert heads["intent_labels"] == ["greet", "order_audit", "order_payment"]
        assert "B-order_no" in heads["slot_labels"]
    else:
        assert {"precision", "recall", "f1", "token_accuracy"} <= set(m)
    assert not list(result.model_dir.glob("*.bin"))
