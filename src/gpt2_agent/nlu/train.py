"""Train the joint NLU model from Rasa-style data, evaluate it on the hand-written set, register it.

A config is an ordinary training config (see ``configs/nlu.toml``) plus an ``[nlu]`` section::

    [nlu]
    data = ["demo"]          # "demo" = packaged nlu.yml + generated examples; or .yml/.jsonl paths
    generate_seed = 0
    generate_scale = 1.0     # × the example counts of templates.yml
    eval = "demo"            # hand-written eval.yml (+ eval_fresh.yml, reported as fresh_*); "" or a path
    min_confidence = 0.5     # stored with the model; below it the intent is out_of_scope
    exclude_eval_texts = true

:func:`train_nlu` turns the data into JSONL records (texts normalised the way the parser
normalises them, offsets unchanged), runs the training pipeline (``dataset = "nlu"``, task
``joint_nlu``), writes ``patterns.json`` (lookups, regexes, synonyms) and ``nlu.json`` next to
the weights, scores model + extractors on the evaluation set, and registers the version (its
``intent_accuracy``/``slot_f1`` are the evaluation set's, so promotion compares like with like).
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpt2_agent.config import Settings
from gpt2_agent.nlu.errors import TrainingDataError
from gpt2_agent.nlu.evaluation import evaluate_parser, examples_hash
from gpt2_agent.nlu.extractors import EntityExtractor, Patterns
from gpt2_agent.nlu.format import NluExample, TrainingData, load
from gpt2_agent.nlu.generate import FRESH_FILE, eval_data, generate_demo_data
from gpt2_agent.nlu.parser import NluParser
from gpt2_agent.nlu.predictor import NLU_FILE, PATTERNS_FILE, JointPredictor
from gpt2_agent.nlu.text import normalize
from gpt2_agent.store import Database, create_database, upgrade

logger = logging.getLogger(__name__)

DEMO = "demo"
MODEL_NAME = "nlu"
PROMOTION_METRIC = "intent_accuracy"


class NluDataConfig(BaseModel):
    """The ``[nlu]`` section of a training config."""

    model_config = ConfigDict(extra="forbid")

    data: list[str] = Field(default_factory=lambda: [DEMO], min_length=1)
    generate_seed: int = 0
    generate_scale: float = Field(default=1.0, gt=0, le=20)
    eval: str = DEMO
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    exclude_eval_texts: bool = True


@dataclass
class NluTrainResult:
    """What :func:`train_nlu` produced."""

    model_dir: Path
    eval_metrics: dict[str, Any]
    n_train_examples: int
    n_excluded: int
    registered_version: int | None = None
    promoted: bool | None = None
    promotion_note: str | None = None
    fresh_metrics: dict[str, Any] = field(default_factory=dict)
    pipeline: Any = field(default=None, repr=False)  # the training pipeline's TrainResult


def is_nlu_config(path: str | Path) -> bool:
    """Whether a TOML training config has an ``[nlu]`` section (train it with :func:`train_nlu`)."""
    try:
        with open(path, "rb") as fh:
            return isinstance(tomllib.load(fh).get("nlu"), dict)
    except (OSError, tomllib.TOMLDecodeError):
        return False


def split_config(
    config: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], NluDataConfig, list[str]]:
    """The training part of a config, its ``[nlu]`` section, and the overrides for the pipeline.

    ``nlu.*`` overrides apply to the ``[nlu]`` section; the others are passed on.
    """
    if isinstance(config, Mapping):
        raw = json.loads(json.dumps(dict(config)))
        origin = "<config>"
    else:
        origin = str(config)
        try:
            with open(config, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise TrainingDataError(f"config file not found: {config}") from None
        except tomllib.TOMLDecodeError as exc:
            raise TrainingDataError(f"{config}: invalid TOML: {exc}") from None
    section = dict(raw.pop("nlu", None) or {})
    rest = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key.strip().startswith("nlu."):
            try:
                section[key.strip()[4:]] = tomllib.loads(f"v = {value.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                section[key.strip()[4:]] = value.strip()
        else:
            rest.append(item)
    try:
        nlu = NluDataConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"nlu.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TrainingDataError(f"{origin}: invalid [nlu] section: {problems}") from None
    return raw, nlu, rest


def build_training_data(cfg: NluDataConfig) -> TrainingData:
    """Every example, lookup, regex and synonym of the configured data files."""
    data = TrainingData()
    for item in cfg.data:
        part = generate_demo_data(cfg.generate_seed, scale=cfg.generate_scale) if item == DEMO else load(item)
        data = data.merge(part)
    if not data.examples:
        raise TrainingDataError("the configured NLU data has no examples")
    return data


def load_eval_set(cfg: NluDataConfig) -> list[NluExample]:
    """The evaluation examples named by ``cfg.eval`` (none for ``""``)."""
    if not cfg.eval:
        return []
    return (eval_data() if cfg.eval == DEMO else load(cfg.eval)).examples


def load_fresh_set(cfg: NluDataConfig) -> list[NluExample]:
    """The second packaged evaluation set (``eval_fresh.yml``), scored with the demo evaluation."""
    return eval_data(FRESH_FILE).examples if cfg.eval == DEMO else []


def training_records(data: TrainingData, exclude: set[str]) -> tuple[list[dict[str, Any]], int]:
    """Pipeline records with normalised text (same offsets); examples whose text is in ``exclude``
    (the evaluation set) are left out so the scores are not on seen sentences."""
    records, dropped = [], 0
    for ex in data.examples:
        key = _text_key(ex.text)
        if key in exclude:
            dropped += 1
            continue
        record = ex.to_record()
        record["text"] = normalize(ex.text)
        for ent in record["entities"]:
            ent.pop("value", None)
        records.append(record)
    return records, dropped


def _text_key(text: str) -> str:
    return " ".join(normalize(text).lower().split())


def train_nlu(
    config_path: str | Path | Mapping[str, Any],
    settings: Settings,
    overrides: Sequence[str] = (),
    progress: bool = True,
    *,
    db: Database | None = None,
    resume: bool = True,
) -> NluTrainResult:
    """Train, evaluate and (if ``[register] enabled``) register the NLU model of a config.

    :param config_path: TOML path (or parsed mapping) with the ``[nlu]`` section.
    :param overrides: ``["train.max_steps=100", "nlu.generate_scale=0.5", ...]``.
    :raises TrainingDataError: malformed data or ``[nlu]`` section.
    :raises ConfigError: the rest of the config is invalid (from the training pipeline).
    """
    from gpt2_agent.training import load_config, train_from_config

    raw, nlu_cfg, rest = split_config(config_path, overrides)
    raw.setdefault("data", {})
    raw["data"].setdefault("dataset", "nlu")
    raw["data"].setdefault("label_field", "intent")
    raw.setdefault("model", {}).setdefault("task", "joint_nlu")
    register_section = dict(raw.get("register") or {})
    raw["register"] = {**register_section, "enabled": False}  # registered below, with the eval scores
    probe = load_config(raw, rest)  # validates early and tells where the run folder is
    out_dir = (Path(probe.output_dir) if probe.output_dir else settings.home / "runs" / probe.name).resolve()
    data = build_training_data(nlu_cfg)
    eval_examples = load_eval_set(nlu_cfg)
    fresh_examples = load_fresh_set(nlu_cfg)
    held_out = [*eval_examples, *fresh_examples]
    exclude = {_text_key(ex.text) for ex in held_out} if nlu_cfg.exclude_eval_texts else set()
    records, dropped = training_records(data, exclude)
    if dropped:
        logger.info("left %d training examples out because the evaluation set has the same text", dropped)
    data_dir = out_dir / "nlu_data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train_file = data_dir / "train.jsonl"
    train_file.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    raw["data"]["source"] = {"kind": "jsonl", "path": str(train_file)}

    own_db = db is None
    if db is None:
        db = create_database(settings.database_url)
        upgrade(db)
    try:
        pipeline = train_from_config(raw, settings, overrides=rest, progress=progress, db=db, resume=resume)
        model_dir = pipeline.model_dir
        (model_dir / PATTERNS_FILE).write_text(
            json.dumps(data.patterns(), ensure_ascii=False, indent=2), encoding="utf-8"
        )
        (model_dir / NLU_FILE).write_text(
            json.dumps(
                {"min_confidence": nlu_cfg.min_confidence, "normalization": "fullwidth+controls"}, indent=2
            ),
            encoding="utf-8",
        )
        eval_metrics: dict[str, Any] = {}
        fresh_metrics: dict[str, Any] = {}
        eval_hash = None
        if eval_examples:
            parser = parser_for_folder(model_dir)
            eval_metrics = evaluate_parser(parser, eval_examples)
            if fresh_examples:
                fresh_metrics = evaluate_parser(parser, fresh_examples)
            eval_hash = examples_hash(eval_examples)
            logger.info(
                "evaluation set: intent accuracy %.3f, slot F1 %.3f (%d examples)",
                eval_metrics["intent_accuracy"],
                eval_metrics["slot_f1"],
                eval_metrics["n_examples"],
            )
        summary = _write_metrics(
            model_dir, pipeline.metrics, eval_metrics, fresh_metrics, eval_hash, len(records)
        )
        result = NluTrainResult(
            model_dir=model_dir,
            eval_metrics=eval_metrics,
            n_train_examples=len(records),
            n_excluded=dropped,
            fresh_metrics=fresh_metrics,
            pipeline=pipeline,
        )
        if register_section.get("enabled", False):
            _register(settings, db, model_dir, register_section, summary, eval_hash, pipeline.run_id, result)
        return result
    finally:
        if own_db:
            db.dispose()


def parser_for_folder(folder: str | Path, *, min_confidence: float | None = None) -> NluParser:
    """A parser over a model folder (its patterns and ``min_confidence`` unless given)."""
    predictor = JointPredictor(folder)
    threshold = (
        min_confidence if min_confidence is not None else predictor.settings.get("min_confidence", 0.5)
    )
    extractor = EntityExtractor(Patterns.from_dict(predictor.patterns))
    return NluParser(predictor.predict, extractor, min_confidence=float(threshold))


def _write_metrics(
    model_dir: Path,
    pipeline_metrics: Mapping[str, Any],
    eval_metrics: Mapping[str, Any],
    fresh_metrics: Mapping[str, Any],
    eval_hash: str | None,
    n_train: int,
) -> dict[str, Any]:
    """``metrics.json``: the evaluation set's scores on top, the held-out generated split's below."""
    heldout = {k: v for k, v in pipeline_metrics.items() if k not in ("train",)}
    summary: dict[str, Any] = {"n_train_examples": n_train}
    for key in ("intent_accuracy", "slot_f1", "slot_precision", "slot_recall"):
        if isinstance(heldout.get(key), (int, float)):
            summary[f"heldout_{key}"] = float(heldout[key])
        if key in eval_metrics:
            summary[key] = float(eval_metrics[key])
        if key in fresh_metrics:
            summary[f"fresh_{key}"] = float(fresh_metrics[key])
    if eval_metrics:
        summary["eval_examples"] = int(eval_metrics["n_examples"])
        summary["eval_set_hash"] = eval_hash
    full = {
        **summary,
        "eval_set": dict(eval_metrics),
        "fresh_eval_set": dict(fresh_metrics),
        "heldout_generated": heldout,
        "train": pipeline_metrics.get("train"),
    }
    (model_dir / "metrics.json").write_text(
        json.dumps(full, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    return summary


def _register(
    settings: Settings,
    db: Database,
    model_dir: Path,
    section: Mapping[str, Any],
    summary: dict[str, Any],
    eval_hash: str | None,
    run_id: int | None,
    result: NluTrainResult,
) -> None:
    from gpt2_agent.registry import PromotionRefused, Registry

    registry = Registry(settings, db)
    name = str(section.get("name") or MODEL_NAME)
    by = str(section.get("created_by") or "training")
    info = registry.register(
        model_dir,
        name,
        task="nlu",
        description=section.get("description") or "Joint intent + slot model for chat (GPT-2, two heads)",
        metrics=summary,
        eval_set_hash=eval_hash,
        created_by=by,
    )
    if info.version == 1:
        # A new model: promote on the evaluation set's intent accuracy, not the generic "loss".
        registry.configure_model(name, metric=PROMOTION_METRIC)
    reason = f"training run {run_id}" if run_id is not None else "training"
    alias = section.get("alias", "candidate")
    if alias:
        registry.set_alias(name, str(alias), info.version, by=by, reason=reason)
    result.registered_version = info.version
    if section.get("promote", False):
        try:
            promotion = registry.promote(name, info.version, by=by, reason=reason)
            result.promoted, result.promotion_note = True, promotion.reason
        except PromotionRefused as exc:
            result.promoted, result.promotion_note = False, str(exc)
            logger.info("not promoted: %s", exc)
    logger.info("registered %s:%s", name, info.version)


__all__ = [
    "NluDataConfig",
    "NluTrainResult",
    "build_training_data",
    "is_nlu_config",
    "load_eval_set",
    "parser_for_folder",
    "split_config",
    "train_nlu",
    "training_records",
]
