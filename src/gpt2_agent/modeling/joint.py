"""Joint intent + slot model for NLU: one GPT-2 backbone, two heads, trained together.

The intent head reads the hidden state of the last non-pad token (GPT-2 is causal, so only that
position has seen the whole utterance); the slot head tags every token (BIO). The loss is the
intent cross-entropy plus ``slot_loss_weight`` times the token cross-entropy. Reference:
Chen et al. 2019, "BERT for Joint Intent Classification and Slot Filling", arXiv 1902.10909.

Saved with ``save_pretrained`` (config.json + model.safetensors) plus ``heads.json`` naming the
labels of both heads; ``GPT2ForJointNLU.from_pretrained(folder)`` restores it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GPT2Config, GPT2Model
from transformers.modeling_outputs import ModelOutput
from transformers.models.gpt2.modeling_gpt2 import GPT2PreTrainedModel

from gpt2_agent.modeling.losses import IGNORE_INDEX

HEADS_FILE = "heads.json"


@dataclass
class JointNLUOutput(ModelOutput):
    """Output of :class:`GPT2ForJointNLU`.

    Args:
        loss (`torch.FloatTensor`, *optional*): intent loss + ``slot_loss_weight`` × slot loss.
        intent_logits (`torch.FloatTensor` of shape `(batch_size, num_intents)`).
        slot_logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_slot_labels)`).
    """

    loss: Tensor | None = None
    intent_logits: Tensor | None = None
    slot_logits: Tensor | None = None


def last_token_index(input_ids: Tensor, attention_mask: Tensor | None, pad_token_id: int | None) -> Tensor:
    """Index of the rightmost real token in each row (works for left and right padding)."""
    if attention_mask is not None:
        mask = attention_mask.to(torch.int64)
    elif pad_token_id is not None:
        mask = (input_ids != pad_token_id).to(torch.int64)
    else:
        return torch.full(
            (input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.int64, device=input_ids.device
        )
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (positions * mask).argmax(-1)  # (B,)


class GPT2ForJointNLU(GPT2PreTrainedModel):
    """GPT-2 with an utterance-level intent head and a token-level slot (BIO) head.

    The config carries ``intent_labels`` and ``slot_labels`` (lists of names) and
    ``slot_loss_weight`` (default 1.0) as extra attributes, so ``config.json`` alone is enough to
    rebuild the model; ``heads.json`` repeats them for readers that do not load the model.
    """

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        intents = list(getattr(config, "intent_labels", None) or [])
        slots = list(getattr(config, "slot_labels", None) or [])
        if not intents or not slots:
            raise ValueError(
                "GPT2ForJointNLU needs config.intent_labels and config.slot_labels "
                f"(got {intents!r}, {slots!r})"
            )
        self.num_intents = len(intents)
        self.num_slot_labels = len(slots)
        self.slot_loss_weight = float(getattr(config, "slot_loss_weight", 1.0))
        self.transformer = GPT2Model(config)
        self.dropout = nn.Dropout(config.resid_pdrop)
        self.intent_head = nn.Linear(config.n_embd, self.num_intents)
        self.slot_head = nn.Linear(config.n_embd, self.num_slot_labels)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        intent_labels: Tensor | None = None,
        slot_labels: Tensor | None = None,
        **kwargs: Any,
    ) -> JointNLUOutput:
        """Logits of both heads; the joint loss when both label tensors are given.

        ``intent_labels`` is (B,), ``slot_labels`` is (B, T) with ``-100`` on padding and on the
        non-first sub-tokens of a word.
        """
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = self.dropout(hidden)  # (B, T, d)
        last = last_token_index(input_ids, attention_mask, self.config.pad_token_id)  # (B,)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, d)
        intent_logits = self.intent_head(pooled)  # (B, n_intents)
        slot_logits = self.slot_head(hidden)  # (B, T, n_slots)
        loss = None
        if intent_labels is not None and slot_labels is not None:
            intent_loss = F.cross_entropy(intent_logits.float(), intent_labels)
            slot_loss = F.cross_entropy(
                slot_logits.float().reshape(-1, self.num_slot_labels),
                slot_labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
            loss = intent_loss + self.slot_loss_weight * slot_loss
        return JointNLUOutput(loss=loss, intent_logits=intent_logits, slot_logits=slot_logits)

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        """``PreTrainedModel.save_pretrained`` plus ``heads.json`` (labels of both heads)."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        heads = {
            "intent_labels": list(self.config.intent_labels),
            "slot_labels": list(self.config.slot_labels),
            "slot_loss_weight": self.slot_loss_weight,
            "intent_pooling": "last_non_pad_token",
        }
        with open(os.path.join(save_directory, HEADS_FILE), "w", encoding="utf-8") as fh:
            json.dump(heads, fh, ensure_ascii=False, indent=2)
        return result


__all__ = ["HEADS_FILE", "GPT2ForJointNLU", "JointNLUOutput", "last_token_index"]
