"""Natural-language requests: intent + slot parsing (GPT-2 joint model + rule extractors) and dialogue.

Entry points (for the API, the CLI and the training command)::

    from gpt2_agent.nlu import NluService, DialogueManager, train_nlu
    nlu = NluService(settings, db, registry)
    nlu.parse("帮我审核一下订单 66120")        # Rasa-shaped dict
    chat = DialogueManager(settings, db, nlu, engine)
    chat.reply(None, "pay order 12345, 1000 yuan", user="alice", lang_hint=None)
    train_nlu("configs/nlu.toml", settings)

Names are imported lazily so that reading training data does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ConversationBusy": "gpt2_agent.nlu.errors",
    "ConversationNotFound": "gpt2_agent.nlu.errors",
    "InvalidConversationId": "gpt2_agent.nlu.errors",
    "InvalidText": "gpt2_agent.nlu.errors",
    "NluError": "gpt2_agent.nlu.errors",
    "NluModelNotReady": "gpt2_agent.nlu.errors",
    "TextTooLong": "gpt2_agent.nlu.errors",
    "TrainingDataError": "gpt2_agent.nlu.errors",
    "DialogueManager": "gpt2_agent.nlu.dialogue",
    "NluService": "gpt2_agent.nlu.service",
    "NluParser": "gpt2_agent.nlu.parser",
    "TrainingData": "gpt2_agent.nlu.format",
    "NluExample": "gpt2_agent.nlu.format",
    "Entity": "gpt2_agent.nlu.format",
    "is_nlu_config": "gpt2_agent.nlu.train",
    "train_nlu": "gpt2_agent.nlu.train",
}

if TYPE_CHECKING:
    from gpt2_agent.nlu.dialogue import DialogueManager
    from gpt2_agent.nlu.errors import (
        ConversationBusy,
        ConversationNotFound,
        InvalidConversationId,
        InvalidText,
        NluError,
        NluModelNotReady,
        TextTooLong,
        TrainingDataError,
    )
    from gpt2_agent.nlu.format import Entity, NluExample, TrainingData
    from gpt2_agent.nlu.parser import NluParser
    from gpt2_agent.nlu.service import NluService
    from gpt2_agent.nlu.train import is_nlu_config, train_nlu


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gpt2_agent.nlu' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ConversationBusy",
    "ConversationNotFound",
    "DialogueManager",
    "Entity",
    "InvalidConversationId",
    "InvalidText",
    "NluError",
    "NluExample",
    "NluModelNotReady",
    "NluParser",
    "NluService",
    "TextTooLong",
    "TrainingData",
    "TrainingDataError",
    "is_nlu_config",
    "train_nlu",
]
