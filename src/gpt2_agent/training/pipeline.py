"""One call from a training config to a registered model.

:func:`train_from_config` runs: data → preprocessing → tokenizer → (token shards for language
models) → model → training → evaluation → (registration). Everything lands in the run folder
(``<home>/runs/<name>`` unless ``output_dir`` says otherwise)::

    tokenizer/            the tokenizer used (trained here, or copied from where it came from)
    data/                 token shards of a language model's splits
    checkpoints/          resumable checkpoints (see checkpoint.py)
    metrics.jsonl         per-step metrics
    plots/                loss.png, confusion_matrix.png, reliability.png
    model/                the artifact: config.json, model.safetensors, tokenizer files,
                          labels.json, metrics.json, lineage.json, and for a classifier
                          eval_sample.json (held-out texts that serving checks bf16/int8 on)

The run is a row in ``training_runs`` (metrics per step in ``training_metrics``). Running the
same config again resumes from the last checkpoint and continues the same row. Under
``torchrun`` the ranks share the work (DDP); rank 0 alone writes the database and the registry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from sqlalchemy import select

from gpt2_agent.config import Settings
from gpt2_agent.modeling import ModelSpec, NgramFeaturizer, build_model, causal_lm_loss
from gpt2_agent.registry.artifact import EVAL_SAMPLE_FILE, LABELS_FILE, LINEAGE_FILE
from gpt2_agent.store import Database, create_database, upgrade
from gpt2_agent.store.training_tables import TrainingRun, create_run, update_run
from gpt2_agent.training.batches import Batch, TensorBatches
from gpt2_agent.training.callbacks import Callback, DatabaseMetrics, ProgressBar
from gpt2_agent.training.checkpoint import latest_checkpoint
from gpt2_agent.training.config import TrainingConfig, load_config
from gpt2_agent.training.datasets import DatasetSplits, lm_texts, load_examples
from gpt2_agent.training.encoding import bio_labels, classification_features, tagging_features
from gpt2_agent.training.evaluate import (
    classification_metrics,
    classifier_probabilities,
    evaluate_classifier,
    evaluate_lm,
    evaluate_tagger,
    write_report,
)
from gpt2_agent.training.shards import INDEX_FILE, BlockBatches, BlockStream, write_shards
from gpt2_agent.training.tokenizer import load_tokenizer, train_tokenizer
from gpt2_agent.training.trainer import CHECKPOINT_DIR, METRICS_FILE, FitResult, Trainer, TrainingCancelled

logger = logging.getLogger(__name__)

REGISTRY_PREFIX = "registry:"
LM_EVAL_BATCHES = 50  # periodic LM evaluation reads at most this many validation batches
# The registry's task kinds for our model classes.
REGISTRY_TASKS = {
    "sequence_classification": "classify",
    "token_classification": "tag",
    "causal_lm": "generate",
    "joint_nlu": "nlu",
}


@dataclass
class TrainResult:
    """What :func:`train_from_config` produced."""

    run_id: int | None
    name: str
    task: str
    output_dir: Path
    model_dir: Path
    metrics: dict[str, Any]
    fit: FitResult
    registered_version: int | None = None
    promoted: bool | None = None
    promotion_note: str | None = None


def train_from_config(
    config: str | Path | Mapping[str, Any] | TrainingConfig,
    settings: Settings,
    *,
    overrides: Sequence[str] = (),
    progress: bool = True,
    db: Database | None = None,
    resume: bool = True,
    callbacks: Iterable[Callback] = (),
    run_id: int | None = None,
) -> TrainResult:
    """Train (or resume) the model a config describes, evaluate it, and register it if asked.

    :param config: a TOML path, a parsed mapping or a :class:`TrainingConfig`.
    :param settings: paths (``home``, ``models_path``), ``database_url``, ``warehouse_url``.
    :param overrides: ``["train.lr=1e-3", ...]`` applied on top of the file.
    :param progress: show a progress bar (only when stdout is a terminal).
    :param db: database to record the run in (default: ``settings.database_url``, migrated).
    :param resume: continue from the run folder's last checkpoint when there is one.
    :param run_id: an existing ``training_runs`` row to record into (the API creates it when it
        queues the run); its outputs go to a folder of their own.
    :raises ConfigError: the config is invalid (message names key and line).
    :raises DatasetError: the data cannot train this model (empty, one class...).
    """
    cfg = load_config(config, overrides)
    rank, world = _init_distributed()
    out_dir = Path(cfg.output_dir) if cfg.output_dir else settings.home / "runs" / cfg.name
    if run_id is not None and not cfg.output_dir:
        out_dir = settings.home / "runs" / f"{cfg.name}-{run_id}"
    out_dir = out_dir.resolve()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            _clear_run_folder(out_dir)
    own_db = db is None and rank == 0
    if own_db:
        db = create_database(settings.database_url)
        upgrade(db)
    if run_id is not None and rank == 0 and db is not None:
        update_run(db, run_id, status="running", output_dir=str(out_dir), error=None)
    elif rank == 0 and db is not None:
        run_id = _start_run(db, cfg, out_dir, resume)
    else:
        run_id = None
    try:
        result = _run(cfg, settings, db, run_id, out_dir, rank, world, progress, resume, list(callbacks))
        if run_id is not None and db is not None:
            update_run(
                db,
                run_id,
                status="succeeded",
                metrics=_summary(result.metrics),
                registered_version=result.registered_version,
                error=None,
            )
        return result
    except BaseException as exc:
        if run_id is not None and db is not None:
            status = "cancelled" if isinstance(exc, (KeyboardInterrupt, TrainingCancelled)) else "failed"
            update_run(db, run_id, status=status, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if own_db and db is not None:
            db.dispose()


# --- the steps -----------------------------------------------------------------------------------
def _run(
    cfg: TrainingConfig,
    settings: Settings,
    db: Database | None,
    run_id: int | None,
    out_dir: Path,
    rank: int,
    world: int,
    progress: bool,
    resume: bool,
    callbacks: list[Callback],
) -> TrainResult:
    task = cfg.model.task
    _seed(cfg.train.seed)
    spec = _resolve_init(cfg.model, settings, db)
    splits: DatasetSplits | None = None
    if task != "causal_lm":
        splits = load_examples(cfg.data, task, settings)
        logger.info(
            "data %s: %d train, %d validation, %d test examples",
            splits.source,
            len(splits.train),
            len(splits.validation),
            len(splits.test),
        )
    tokenizer = _tokenizer(cfg, spec, settings, splits, out_dir, rank)
    labels: list[str] = []
    slot_labels: list[str] = []
    if splits is not None:
        if task in ("sequence_classification", "joint_nlu"):
            labels = splits.labels
        if task in ("token_classification", "joint_nlu"):
            slot_labels = bio_labels(splits.entity_types)
        if task == "token_classification":
            labels, slot_labels = slot_labels, []
    featurizer = None
    if spec.sparse_ngrams and splits is not None:
        featurizer = NgramFeaturizer.fit(ex.text for ex in splits.train)
        logger.info("n-gram features: %d word and character n-grams", featurizer.size)
    _seed(cfg.train.seed)  # the model's initial weights do not depend on how the data was read
    model = build_model(
        spec,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        labels=labels,
        slot_labels=slot_labels,
        featurizer=featurizer,
    )
    if model.config.vocab_size < len(tokenizer):
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary only "
            f"{model.config.vocab_size}"
        )
    max_length = min(cfg.tokenizer.max_length or model.config.n_positions, model.config.n_positions)
    tcfg = cfg.train
    train_data: Any
    eval_data: Any = None
    test_batches: Iterable[Batch] | None = None
    if task == "causal_lm":
        train_data, eval_data, test_batches = _lm_data(cfg, settings, tokenizer, model, out_dir, rank, world)
        loss_fn: Any = _lm_loss
        eval_fn = None
    else:
        assert splits is not None
        features = _features(task, tokenizer, splits.train, labels, slot_labels, max_length, featurizer)
        train_data = TensorBatches(
            features,
            batch_size=tcfg.batch_size,
            pad_token_id=tokenizer.pad_token_id,
            seed=tcfg.seed,
            rank=rank,
            world_size=world,
            drop_last=world > 1,
            group_by_length=True,
        )
        eval_fn = None
        if splits.validation:
            val = _features(task, tokenizer, splits.validation, labels, slot_labels, max_length, featurizer)
            val_batches = TensorBatches(
                val, batch_size=cfg.eval.batch_size, pad_token_id=tokenizer.pad_token_id, shuffle=False
            )
            eval_data = val_batches
            if task == "sequence_classification":
                eval_fn = _classifier_eval(val_batches, labels)
        loss_fn = None
    if rank == 0:
        # progress=True still stays quiet when stdout is not a terminal (logs, CI, tests).
        callbacks = [*callbacks, ProgressBar(enabled=None if progress else False)]
        if db is not None and run_id is not None:
            callbacks.append(DatabaseMetrics(db, run_id))
    trainer = Trainer(
        model,
        tcfg,
        train_data,
        out_dir=out_dir,
        eval_data=eval_data,
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        callbacks=callbacks if rank == 0 else [],
    )
    fit = trainer.fit(resume=resume)
    model_dir = out_dir / "model"
    metrics: dict[str, Any] = {}
    version = promoted = note = None
    if rank == 0:
        metrics = _final_eval(cfg, task, model, tokenizer, splits, test_batches)
        metrics["train"] = {k: v for k, v in fit.to_dict().items() if k != "checkpoint"}
        lineage = _lineage(cfg, spec, splits, tokenizer, out_dir, run_id, fit)
        sample = _eval_sample(task, splits, cfg.eval.check_sample)
        _write_artifact(model_dir, model, tokenizer, metrics, lineage, task, sample)
        write_report(
            metrics,
            out_dir,
            plots=cfg.eval.plots,
            metrics_jsonl=out_dir / METRICS_FILE,
            plots_dir=out_dir / "plots",
        )
        if cfg.publish.enabled:
            if db is None:
                raise ValueError("registering a model needs a database")
            version, promoted, note = _register(cfg, settings, db, model_dir, task, metrics, lineage, run_id)
    if dist.is_initialized():
        dist.barrier()
    return TrainResult(
        run_id=run_id,
        name=cfg.name,
        task=task,
        output_dir=out_dir,
        model_dir=model_dir,
        metrics=metrics,
        fit=fit,
        registered_version=version,
        promoted=promoted,
        promotion_note=note,
    )


def _lm_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return causal_lm_loss(model, batch["input_ids"], batch["labels"])


def _features(
    task: str,
    tokenizer: Any,
    examples: Sequence[Any],
    labels: Sequence[str],
    slot_labels: Sequence[str],
    max_length: int,
    featurizer: NgramFeaturizer | None = None,
) -> dict[str, list[Any]]:
    if task == "sequence_classification":
        return classification_features(tokenizer, examples, labels, max_length)
    if task == "token_classification":
        return tagging_features(tokenizer, examples, labels, max_length)
    features = tagging_features(tokenizer, examples, slot_labels, max_length, intents=labels)
    if featurizer is not None:
        features.update(featurizer.features([ex.text for ex in examples]))
    return features


def _classifier_eval(batches: TensorBatches, labels: Sequence[str]) -> Any:
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        probs, y = classifier_probabilities(model, batches)
        m = classification_metrics(y, probs, labels)
        out = {"loss": m["loss"], "accuracy": m["accuracy"], "f1": m["f1"]}
        if m["roc_auc"] is not None:
            out["roc_auc"] = m["roc_auc"]
        return out

    return evaluate


def _tokenizer(
    cfg: TrainingConfig,
    spec: ModelSpec,
    settings: Settings,
    splits: DatasetSplits | None,
    out_dir: Path,
    rank: int,
) -> Any:
    """The run's tokenizer, always saved (and on resume reloaded) from ``out_dir/tokenizer``."""
    folder = out_dir / "tokenizer"
    if rank == 0 and not (folder / "tokenizer.json").is_file():
        source = None
        if spec.init_from and (Path(spec.init_from) / "tokenizer.json").is_file():
            source = Path(spec.init_from)  # a pretrained backbone only understands its own tokens
        elif cfg.tokenizer.path:
            source = Path(cfg.tokenizer.path)
        if source is not None:
            tokenizer = load_tokenizer(source)
        else:
            tokenizer = train_tokenizer(
                _tokenizer_corpus(cfg, settings, splits),
                vocab_size=cfg.tokenizer.vocab_size,
                min_frequency=cfg.tokenizer.min_frequency,
                model_max_length=spec.n_positions,
            )
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, folder)
    _barrier()  # the other ranks read what rank 0 wrote
    return load_tokenizer(folder)


def _tokenizer_corpus(cfg: TrainingConfig, settings: Settings, splits: DatasetSplits | None) -> Iterable[str]:
    if cfg.tokenizer.corpus == "warehouse":
        from gpt2_agent.training.data import corpus_texts

        url = cfg.data.warehouse_url or settings.warehouse_url
        return corpus_texts(url, template=cfg.data.template)
    if splits is not None:
        return (ex.text for ex in splits.train)
    return lm_texts(cfg.data, settings).open("train")


def _lm_data(
    cfg: TrainingConfig,
    settings: Settings,
    tokenizer: Any,
    model: Any,
    out_dir: Path,
    rank: int,
    world: int,
) -> tuple[BlockBatches, list[Batch] | None, Iterable[Batch] | None]:
    """Shards of each split (written once, reused on resume) and their batch streams."""
    streams = lm_texts(cfg.data, settings)
    data_dir = out_dir / "data"
    if rank == 0:
        for split in ("train", "validation", "test"):
            folder = data_dir / split
            if (folder / INDEX_FILE).is_file():
                continue
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished write from a killed run
            write_shards(streams.open(split), tokenizer, folder)
    _barrier()
    block = model.config.n_positions
    tcfg = cfg.train
    train_stream = BlockStream(
        data_dir / "train", block_size=block, seed=tcfg.seed, rank=rank, world_size=world
    )
    train = BlockBatches(train_stream, tcfg.batch_size)

    def batches(split: str, limit: int | None) -> list[Batch] | None:
        try:
            stream = BlockStream(data_dir / split, block_size=block, shuffle=False)
        except ValueError:  # too few tokens for one block
            return None
        out = []
        for i, b in enumerate(BlockBatches(stream, min(cfg.eval.batch_size, len(stream)))):
            if limit is not None and i >= limit:
                break
            out.append(b)
        return out

    val = batches("validation", LM_EVAL_BATCHES)
    test = batches(cfg.eval.split, None) or val
    return train, val, test


def _final_eval(
    cfg: TrainingConfig,
    task: str,
    model: Any,
    tokenizer: Any,
    splits: DatasetSplits | None,
    test_batches: Iterable[Batch] | None,
) -> dict[str, Any]:
    bins = cfg.eval.calibration_bins
    if task == "causal_lm":
        if test_batches is None:
            logger.warning("no held-out text to evaluate the language model on")
            return {"task": task}
        return {"task": task, "eval_split": cfg.eval.split, **evaluate_lm(model, test_batches)}
    assert splits is not None
    examples, split = (splits.test, "test") if cfg.eval.split == "test" else (splits.validation, "validation")
    if not examples:
        examples, split = (splits.validation, "validation") if splits.validation else (splits.train, "train")
        logger.warning("evaluating on the %s split: the %s split is empty", split, cfg.eval.split)
    batch = cfg.eval.batch_size
    if task == "sequence_classification":
        metrics = evaluate_classifier(model, tokenizer, examples, batch_size=batch, bins=bins)
    else:
        metrics = evaluate_tagger(model, tokenizer, examples, batch_size=batch, bins=bins)
    return {"task": task, "eval_split": split, "eval_set_hash": splits.eval_hash, **metrics}


def _write_artifact(
    model_dir: Path,
    model: Any,
    tokenizer: Any,
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    task: str,
    eval_sample: dict[str, list[str]] | None = None,
) -> None:
    """The model folder, written beside and renamed into place (never half-written)."""
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if task == "joint_nlu":
        labels: Any = {
            "intent_labels": list(model.config.intent_labels),
            "slot_labels": list(model.config.slot_labels),
        }
    elif task == "causal_lm":
        labels = []
    else:
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    (tmp / LABELS_FILE).write_text(json.dumps(labels, ensure_ascii=False, indent=2), encoding="utf-8")
    write_report(metrics, tmp, plots=False)
    (tmp / LINEAGE_FILE).write_text(
        json.dumps(lineage, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    if eval_sample is not None:
        (tmp / EVAL_SAMPLE_FILE).write_text(json.dumps(eval_sample, ensure_ascii=False), encoding="utf-8")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(tmp, model_dir)


def _eval_sample(task: str, splits: DatasetSplits | None, size: int) -> dict[str, list[str]] | None:
    """Held-out texts and labels of a classifier (test split, else validation), a seeded sample.

    Serving checks bf16 or int8 against fp32 on them before it uses either; without them it serves
    fp32 (see :mod:`gpt2_agent.serving.precision`).
    """
    if task != "sequence_classification" or splits is None or size == 0:
        return None
    held_out = [ex for ex in (splits.test or splits.validation) if ex.label is not None]
    if not held_out:
        return None
    chosen = random.Random(0).sample(held_out, min(size, len(held_out)))
    return {"texts": [ex.text for ex in chosen], "labels": [str(ex.label) for ex in chosen]}


def _lineage(
    cfg: TrainingConfig,
    spec: ModelSpec,
    splits: DatasetSplits | None,
    tokenizer: Any,
    out_dir: Path,
    run_id: int | None,
    fit: FitResult,
) -> dict[str, Any]:
    tok_file = out_dir / "tokenizer" / "tokenizer.json"
    tok_hash = hashlib.sha256(tok_file.read_bytes()).hexdigest() if tok_file.is_file() else None
    dataset_hash: str | None
    eval_hash: str | None
    if splits is not None:
        dataset_hash, eval_hash, source = splits.fingerprint, splits.eval_hash, splits.source
    else:
        dataset_hash, eval_hash, source = _shards_hash(out_dir / "data"), None, cfg.data.dataset
    from gpt2_agent.registry.lineage import code_version

    return {
        "dataset": cfg.data.dataset,
        "data_source": source,
        "dataset_hash": dataset_hash,
        "eval_set_hash": eval_hash,
        "config": cfg.model_dump(mode="json", by_alias=True),
        "init_from": spec.init_from,
        "tokenizer": {"vocab_size": len(tokenizer), "sha256": tok_hash},
        "training_run_id": run_id,
        "steps": fit.steps,
        "code_version": code_version(),
    }


def _shards_hash(data_dir: Path) -> str | None:
    digest = hashlib.sha256()
    found = False
    for index in sorted(data_dir.glob(f"*/{INDEX_FILE}")):
        digest.update(index.read_bytes())
        found = True
    return digest.hexdigest() if found else None


def _register(
    cfg: TrainingConfig,
    settings: Settings,
    db: Database,
    model_dir: Path,
    task: str,
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    run_id: int | None,
) -> tuple[int, bool | None, str | None]:
    from gpt2_agent.registry import PromotionRefused, Registry

    registry = Registry(settings, db)
    name = cfg.publish.name or cfg.name
    info = registry.register(
        model_dir,
        name,
        task=REGISTRY_TASKS.get(task),
        description=cfg.publish.description,
        metrics=_summary(metrics),
        lineage=lineage,
        eval_set_hash=lineage.get("eval_set_hash"),
        created_by=cfg.publish.created_by,
    )
    reason = f"training run {run_id}" if run_id is not None else "training"
    if cfg.publish.alias:
        registry.set_alias(name, cfg.publish.alias, info.version, by=cfg.publish.created_by, reason=reason)
    promoted: bool | None = None
    note: str | None = None
    if cfg.publish.promote:
        try:
            result = registry.promote(name, info.version, by=cfg.publish.created_by, reason=reason)
            promoted, note = True, result.reason  # changed=False: it already held the alias
        except PromotionRefused as exc:
            promoted, note = False, str(exc)
            logger.info("not promoted: %s", exc)
    logger.info("registered %s:%s", name, info.version)
    return info.version, promoted, note


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """Scalar metrics only (what the registry gate and the runs table need), JSON-safe."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if (isinstance(value, (int, float)) and np.isfinite(value)) or isinstance(value, str):
            out[key] = value
    return out


# --- runs, init, distributed -------------------------------------------------------------------
def _start_run(db: Database, cfg: TrainingConfig, out_dir: Path, resume: bool) -> int:
    """Continue the run row of an interrupted run in the same folder, or create one."""
    if resume and latest_checkpoint(out_dir / CHECKPOINT_DIR) is not None:
        with db.session() as s:
            previous = s.scalar(
                select(TrainingRun.id)
                .where(TrainingRun.output_dir == str(out_dir), TrainingRun.name == cfg.name)
                .order_by(TrainingRun.id.desc())
                .limit(1)
            )
        if previous is not None:
            update_run(db, int(previous), status="running", error=None, finished_at=None)
            return int(previous)
    run_id = create_run(
        db,
        name=cfg.name,
        config=cfg.model_dump(mode="json", by_alias=True),
        model_name=cfg.publish.name or cfg.name,
    )
    update_run(db, run_id, status="running", output_dir=str(out_dir))
    return run_id


def _clear_run_folder(out_dir: Path) -> None:
    for name in (CHECKPOINT_DIR, "model", "plots"):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in (METRICS_FILE, "metrics.json", "best.safetensors"):
        (out_dir / name).unlink(missing_ok=True)


def _resolve_init(spec: ModelSpec, settings: Settings, db: Database | None) -> ModelSpec:
    """``init_from = "registry:name:alias"`` becomes that version's folder."""
    if not spec.init_from or not spec.init_from.startswith(REGISTRY_PREFIX):
        return spec
    if db is None:
        raise ValueError("init_from a registry reference needs a database")
    from gpt2_agent.registry import Registry

    version = Registry(settings, db).resolve(spec.init_from[len(REGISTRY_PREFIX) :])
    logger.info("init_from %s -> %s", spec.init_from, version.path)
    return spec.model_copy(update={"init_from": str(version.path)})


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _init_distributed() -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (gloo on CPU); (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


__all__ = ["REGISTRY_TASKS", "TrainResult", "train_from_config"]
