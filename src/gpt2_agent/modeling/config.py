"""Model shape as a plain, serialisable config, separate from the model (like ``GPT2Config``).

The defaults are the fast training settings measured in PERFORMANCE-NOTES: no dropout (any
attention dropout pushes SDPA off its CPU flash kernel) and the C++ ``gelu_pytorch_tanh``,
which is numerically the same tanh approximation as GPT-2's Python ``gelu_new``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from transformers import GPT2Config

Task = Literal["sequence_classification", "token_classification", "causal_lm", "joint_nlu"]

TASKS: tuple[str, ...] = ("sequence_classification", "token_classification", "causal_lm", "joint_nlu")


class ModelSpec(BaseModel):
    """What to build: the task head, the GPT-2 shape, and where the weights start from.

    ``init_from`` is ``None`` (random init), or a local folder written by ``save_pretrained``: an
    original GPT-2 checkpoint or one of our own models (for example an LM pretrained on company
    text). Its backbone weights are copied and the shape is taken from its ``config.json``.

    ``sparse_ngrams`` (joint NLU only) adds TF-IDF word and character n-gram features to the
    intent head, fitted on the training texts (:mod:`gpt2_agent.modeling.sparse`).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task: Task = "sequence_classification"
    n_layer: int = Field(default=6, ge=1, le=96)
    n_embd: int = Field(default=384, ge=8)
    n_head: int = Field(default=6, ge=1)
    n_positions: int = Field(default=256, ge=8, validation_alias=AliasChoices("n_positions", "context"))
    vocab_size: int = Field(default=8192, ge=16)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    activation: str = "gelu_pytorch_tanh"
    init_from: str | None = None
    sparse_ngrams: bool = False

    @model_validator(mode="after")
    def _check_heads(self) -> ModelSpec:
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd must be divisible by n_head (got n_embd={self.n_embd}, n_head={self.n_head})"
            )
        if self.sparse_ngrams and self.task != "joint_nlu":
            raise ValueError(f"sparse_ngrams is for task 'joint_nlu' (got task={self.task!r})")
        return self

    def to_gpt2_config(
        self,
        *,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        bos_token_id: int | None = None,
    ) -> GPT2Config:
        """The ``GPT2Config`` for this shape (``vocab_size`` from the tokenizer wins over the spec's)."""
        config = GPT2Config(
            n_layer=self.n_layer,
            n_embd=self.n_embd,
            n_head=self.n_head,
            n_positions=self.n_positions,
            vocab_size=vocab_size or self.vocab_size,
            activation_function=self.activation,
            resid_pdrop=self.dropout,
            embd_pdrop=self.dropout,
            attn_pdrop=self.dropout,
            summary_first_dropout=self.dropout,
            pad_token_id=pad_token_id,
            eos_token_id=eos_token_id,
            bos_token_id=bos_token_id if bos_token_id is not None else eos_token_id,
        )
        return config


def apply_training_overrides(config: GPT2Config, spec: ModelSpec) -> None:
    """Set dropout and activation from ``spec`` on a config read from a checkpoint.

    Swapping ``gelu_new`` for ``gelu_pytorch_tanh`` keeps pretrained weights valid: both compute
    the same tanh approximation of GELU, the second in one fused kernel.
    """
    config.activation_function = spec.activation
    config.resid_pdrop = spec.dropout
    config.embd_pdrop = spec.dropout
    config.attn_pdrop = spec.dropout
    config.summary_first_dropout = spec.dropout


__all__ = ["TASKS", "ModelSpec", "Task", "apply_training_overrides"]
