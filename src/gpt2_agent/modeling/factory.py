"""Build, initialise and load the GPT-2 models of every task.

Three ways to start: random weights (``spec.init_from`` is None); a local GPT-2 checkpoint
folder (``from_pretrained(..., local_files_only=True)``: nothing is ever downloaded); or one of
our own models, typically a ``GPT2LMHeadModel`` pretrained on company text, whose backbone
(``transformer.*``) is copied into the new task model (domain pretraining, then fine-tuning).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2ForTokenClassification,
    GPT2LMHeadModel,
    PreTrainedModel,
)

from gpt2_agent.modeling.config import ModelSpec, apply_training_overrides
from gpt2_agent.modeling.joint import DEFAULT_SPARSE_SCALE, GPT2ForJointNLU
from gpt2_agent.modeling.sparse import NgramFeaturizer

logger = logging.getLogger(__name__)

MODEL_CLASSES: dict[str, type[PreTrainedModel]] = {
    "sequence_classification": GPT2ForSequenceClassification,
    "token_classification": GPT2ForTokenClassification,
    "causal_lm": GPT2LMHeadModel,
    "joint_nlu": GPT2ForJointNLU,
}
_TASK_BY_ARCHITECTURE = {cls.__name__: task for task, cls in MODEL_CLASSES.items()}


class ModelLoadError(ValueError):
    """A model folder is missing, incomplete, or does not fit what was asked of it."""


def build_model(
    spec: ModelSpec,
    *,
    vocab_size: int | None = None,
    pad_token_id: int | None = None,
    eos_token_id: int | None = None,
    labels: Sequence[str] = (),
    slot_labels: Sequence[str] = (),
    featurizer: NgramFeaturizer | None = None,
) -> PreTrainedModel:
    """Create the model for ``spec.task``.

    :param spec: task, shape, dropout/activation and ``init_from``.
    :param vocab_size: the tokenizer's size (ignored when ``init_from`` fixes it).
    :param pad_token_id: padding id; classifiers need it to find the last real token.
    :param eos_token_id: end-of-text id (also used as BOS).
    :param labels: class names (sequence classification), BIO tags (token classification) or
        intent names (joint NLU). Unused for the causal LM.
    :param slot_labels: BIO tags of the joint NLU model's slot head.
    :param featurizer: fitted n-gram features for the joint NLU model's intent head (its
        vocabulary sets the sparse layer's size); ``None`` for none.
    """
    label_kwargs = _label_kwargs(spec.task, labels, slot_labels)
    if featurizer is not None:
        if spec.task != "joint_nlu":
            raise ValueError(f"n-gram features are for the joint_nlu task, not {spec.task!r}")
        label_kwargs["sparse_features"] = featurizer.size
        label_kwargs["sparse_scale"] = DEFAULT_SPARSE_SCALE  # in config.json: later defaults may differ
    cls = MODEL_CLASSES[spec.task]
    if spec.init_from:
        model = _from_checkpoint(cls, Path(spec.init_from), spec, pad_token_id, label_kwargs)
    else:
        config = spec.to_gpt2_config(
            vocab_size=vocab_size, pad_token_id=pad_token_id, eos_token_id=eos_token_id
        )
        for key, value in label_kwargs.items():
            setattr(config, key, value)
        config.architectures = [cls.__name__]
        torch_model = cls(config)
        model = torch_model
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    if featurizer is not None:
        assert isinstance(model, GPT2ForJointNLU) and model.sparse_head is not None
        with torch.no_grad():
            model.sparse_head.weight.zero_()  # a new vocabulary: nothing to keep from a checkpoint
        model.attach_featurizer(featurizer)
    return model


def _label_kwargs(task: str, labels: Sequence[str], slot_labels: Sequence[str]) -> dict[str, object]:
    if task == "causal_lm":
        return {}
    if not labels:
        raise ValueError(f"task {task!r} needs a non-empty list of labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique (got {list(labels)!r})")
    if task == "joint_nlu":
        if not slot_labels:
            raise ValueError("task 'joint_nlu' needs a non-empty list of slot_labels")
        return {"intent_labels": list(labels), "slot_labels": list(slot_labels)}
    id2label = dict(enumerate(labels))
    return {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}


def _from_checkpoint(
    cls: type[PreTrainedModel],
    folder: Path,
    spec: ModelSpec,
    pad_token_id: int | None,
    label_kwargs: dict[str, object],
) -> PreTrainedModel:
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"init_from: no config.json in {folder}")
    config = GPT2Config.from_pretrained(str(folder), local_files_only=True)
    apply_training_overrides(config, spec)
    for key, value in label_kwargs.items():
        setattr(config, key, value)
    if "id2label" in label_kwargs:
        config.num_labels = len(label_kwargs["id2label"])  # type: ignore[arg-type]
    if pad_token_id is not None:
        config.pad_token_id = pad_token_id
    config.architectures = [cls.__name__]
    loaded: Any = cls.from_pretrained(
        str(folder),
        config=config,
        local_files_only=True,
        ignore_mismatched_sizes=True,
        output_loading_info=True,
    )
    model: PreTrainedModel = loaded[0]
    info: dict[str, list[str]] = loaded[1]
    missing = [k for k in info.get("missing_keys", []) if k.startswith("transformer.")]
    if missing:
        raise ModelLoadError(
            f"init_from {folder}: backbone weights missing from the checkpoint: {missing[:5]}"
        )
    if (spec.n_layer, spec.n_embd, spec.n_head) != (config.n_layer, config.n_embd, config.n_head):
        logger.info(
            "init_from %s: using the checkpoint's shape (n_layer=%s, n_embd=%s, n_head=%s)",
            folder,
            config.n_layer,
            config.n_embd,
            config.n_head,
        )
    return model


def copy_backbone(source: PreTrainedModel, target: PreTrainedModel) -> list[str]:
    """Copy every ``transformer.*`` weight of ``source`` into ``target``; return the copied names.

    Both must have the same GPT-2 shape (layers, width, vocabulary, context).
    """
    src = {k: v for k, v in source.state_dict().items() if k.startswith("transformer.")}
    dst = target.state_dict()
    copied = []
    with torch.no_grad():
        for name, tensor in src.items():
            if name not in dst:
                continue
            if dst[name].shape != tensor.shape:
                raise ModelLoadError(
                    f"backbone shape mismatch for {name}: {tuple(tensor.shape)} vs {tuple(dst[name].shape)}"
                )
            dst[name].copy_(tensor)
            copied.append(name)
    return copied


def load_model(folder: str | Path, *, task: str | None = None) -> PreTrainedModel:
    """Load a saved model folder, choosing the class from ``config.json``'s ``architectures``."""
    path = Path(folder)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"no config.json in {path}")
    if task is None:
        architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
        matches = [_TASK_BY_ARCHITECTURE[a] for a in architectures if a in _TASK_BY_ARCHITECTURE]
        if not matches:
            raise ModelLoadError(f"{config_file}: unknown architectures {architectures!r}")
        task = matches[0]
    if task not in MODEL_CLASSES:
        raise ModelLoadError(f"unknown task {task!r}")
    return MODEL_CLASSES[task].from_pretrained(str(path), local_files_only=True)


def task_of(model: PreTrainedModel) -> str:
    """The task name of a model built here."""
    for task, cls in MODEL_CLASSES.items():
        if type(model) is cls:
            return task
    raise ValueError(f"not a model of a known task: {type(model).__name__}")


__all__ = ["MODEL_CLASSES", "ModelLoadError", "build_model", "copy_backbone", "load_model", "task_of"]
