"""Training: configs, tokenizer, token shards, the trainer, evaluation, the pipeline and HPO.

Entry points (for the CLI and the API)::

    from gpt2_agent.training import train_from_config, evaluate_model, run_hpo
    result = train_from_config("configs/order-audit.toml", settings, overrides=["train.lr=1e-3"])

Names are imported lazily: ``gpt2_agent.training.data`` (connectors, used by serving and the
actions) must not pay for torch and transformers on import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ConfigError": "gpt2_agent.training.config",
    "TrainingConfig": "gpt2_agent.training.config",
    "load_config": "gpt2_agent.training.config",
    "DatasetError": "gpt2_agent.training.datasets",
    "load_eval_examples": "gpt2_agent.training.datasets",
    "Example": "gpt2_agent.training.encoding",
    "Span": "gpt2_agent.training.encoding",
    "evaluate_model": "gpt2_agent.training.evaluate",
    "HPOResult": "gpt2_agent.training.hpo",
    "run_hpo": "gpt2_agent.training.hpo",
    "TrainResult": "gpt2_agent.training.pipeline",
    "train_from_config": "gpt2_agent.training.pipeline",
    "write_shards": "gpt2_agent.training.shards",
    "load_tokenizer": "gpt2_agent.training.tokenizer",
    "train_tokenizer": "gpt2_agent.training.tokenizer",
    "FitResult": "gpt2_agent.training.trainer",
    "Trainer": "gpt2_agent.training.trainer",
    "TrainerConfig": "gpt2_agent.training.trainer",
    "TrainingError": "gpt2_agent.training.trainer",
}

if TYPE_CHECKING:
    from gpt2_agent.training.config import ConfigError, TrainingConfig, load_config
    from gpt2_agent.training.datasets import DatasetError, load_eval_examples
    from gpt2_agent.training.encoding import Example, Span
    from gpt2_agent.training.evaluate import evaluate_model
    from gpt2_agent.training.hpo import HPOResult, run_hpo
    from gpt2_agent.training.pipeline import TrainResult, train_from_config
    from gpt2_agent.training.shards import write_shards
    from gpt2_agent.training.tokenizer import load_tokenizer, train_tokenizer
    from gpt2_agent.training.trainer import FitResult, Trainer, TrainerConfig, TrainingError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gpt2_agent.training' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ConfigError",
    "DatasetError",
    "Example",
    "FitResult",
    "HPOResult",
    "Span",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainingConfig",
    "TrainingError",
    "evaluate_model",
    "load_config",
    "load_eval_examples",
    "load_tokenizer",
    "run_hpo",
    "train_from_config",
    "train_tokenizer",
    "write_shards",
]
