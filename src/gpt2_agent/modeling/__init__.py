"""GPT-2 models on Hugging Face ``transformers``: classify, tag, generate, and joint NLU."""

from gpt2_agent.modeling.config import TASKS, ModelSpec, Task
from gpt2_agent.modeling.factory import (
    MODEL_CLASSES,
    ModelLoadError,
    build_model,
    copy_backbone,
    load_model,
    task_of,
)
from gpt2_agent.modeling.joint import GPT2ForJointNLU, JointNLUOutput, last_token_index
from gpt2_agent.modeling.losses import IGNORE_INDEX, causal_lm_loss, linear_cross_entropy
from gpt2_agent.modeling.sparse import SPARSE_FEATURES_FILE, NgramFeaturizer

__all__ = [
    "IGNORE_INDEX",
    "MODEL_CLASSES",
    "SPARSE_FEATURES_FILE",
    "TASKS",
    "GPT2ForJointNLU",
    "JointNLUOutput",
    "ModelLoadError",
    "ModelSpec",
    "NgramFeaturizer",
    "Task",
    "build_model",
    "causal_lm_loss",
    "copy_backbone",
    "last_token_index",
    "linear_cross_entropy",
    "load_model",
    "task_of",
]
