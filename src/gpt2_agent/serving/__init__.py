"""Inference runtime: the production version of each model, micro-batched and hot-reloaded.

Use :class:`ServingRuntime`; it knows nothing about HTTP. Errors derive from :class:`ServingError`.
"""

from gpt2_agent.serving.batcher import BatchStats, MicroBatcher, plan_passes
from gpt2_agent.serving.errors import ModelNotReady, ServingClosed, ServingError, UnsupportedTask
from gpt2_agent.serving.loader import ServedModel, TextEncoder, load_served_model
from gpt2_agent.serving.precision import (
    EVAL_SAMPLE_FILE,
    CheckSample,
    PrecisionPolicy,
    choose_precision,
    quantize_int8,
    to_linear,
)
from gpt2_agent.serving.prediction import Prediction
from gpt2_agent.serving.runtime import DEFAULT_TRAIN_HINT, ServingRuntime

__all__ = [
    "DEFAULT_TRAIN_HINT",
    "EVAL_SAMPLE_FILE",
    "BatchStats",
    "CheckSample",
    "MicroBatcher",
    "ModelNotReady",
    "PrecisionPolicy",
    "Prediction",
    "ServedModel",
    "ServingClosed",
    "ServingError",
    "ServingRuntime",
    "TextEncoder",
    "UnsupportedTask",
    "choose_precision",
    "load_served_model",
    "plan_passes",
    "quantize_int8",
    "to_linear",
]
