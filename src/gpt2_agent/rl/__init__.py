"""Learning when to automate: the automation gate as a reinforcement-learning problem.

- :mod:`~gpt2_agent.rl.costs`: the cost model (rewards are negative costs).
- :mod:`~gpt2_agent.rl.stream`, :mod:`~gpt2_agent.rl.env`: the order stream and its Gymnasium
  environment.
- :mod:`~gpt2_agent.rl.tabular`, :mod:`~gpt2_agent.rl.sb3`: SARSA / Q-learning over discretised
  features, and Stable-Baselines3's DQN, A2C and PPO.
- :mod:`~gpt2_agent.rl.safety`: hard rules no policy can override.
- :mod:`~gpt2_agent.rl.ope`: off-policy evaluation (IPS, SNIPS, doubly robust).
- :mod:`~gpt2_agent.rl.artifact`: policies as registry artifacts (safetensors + JSON).
- :mod:`~gpt2_agent.rl.feedback_log`: gate decisions joined with their outcomes.
- :mod:`~gpt2_agent.rl.gate`: the hot-reloading learned gate (:func:`load_gate`).
- :mod:`~gpt2_agent.rl.stats`: dashboard numbers (:func:`gate_stats`).

Names are imported lazily: torch, Gymnasium and SB3 load only when a learner is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CostModel": "gpt2_agent.rl.costs",
    "CostModelError": "gpt2_agent.rl.costs",
    "ENV_VERSION": "gpt2_agent.rl.features",
    "GateDecision": "gpt2_agent.rl.features",
    "GateFeatures": "gpt2_agent.rl.features",
    "HardRules": "gpt2_agent.rl.safety",
    "OrderStream": "gpt2_agent.rl.stream",
    "StreamOrder": "gpt2_agent.rl.stream",
    "OrderStreamEnv": "gpt2_agent.rl.env",
    "TabularConfig": "gpt2_agent.rl.tabular",
    "TabularLearner": "gpt2_agent.rl.tabular",
    "LoggedData": "gpt2_agent.rl.ope",
    "evaluate_offline": "gpt2_agent.rl.ope",
    "PolicyVersionMismatch": "gpt2_agent.rl.artifact",
    "load_policy": "gpt2_agent.rl.artifact",
    "save_policy": "gpt2_agent.rl.artifact",
    "FeedbackLog": "gpt2_agent.rl.feedback_log",
    "UnknownDecision": "gpt2_agent.rl.feedback_log",
    "LearnedGate": "gpt2_agent.rl.gate",
    "load_gate": "gpt2_agent.rl.gate",
    "gate_stats": "gpt2_agent.rl.stats",
}

if TYPE_CHECKING:
    from gpt2_agent.rl.artifact import PolicyVersionMismatch, load_policy, save_policy
    from gpt2_agent.rl.costs import CostModel, CostModelError
    from gpt2_agent.rl.env import OrderStreamEnv
    from gpt2_agent.rl.features import ENV_VERSION, GateDecision, GateFeatures
    from gpt2_agent.rl.feedback_log import FeedbackLog, UnknownDecision
    from gpt2_agent.rl.gate import LearnedGate, load_gate
    from gpt2_agent.rl.ope import LoggedData, evaluate_offline
    from gpt2_agent.rl.safety import HardRules
    from gpt2_agent.rl.stats import gate_stats
    from gpt2_agent.rl.stream import OrderStream, StreamOrder
    from gpt2_agent.rl.tabular import TabularConfig, TabularLearner


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gpt2_agent.rl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ENV_VERSION",
    "CostModel",
    "CostModelError",
    "FeedbackLog",
    "GateDecision",
    "GateFeatures",
    "HardRules",
    "LearnedGate",
    "LoggedData",
    "OrderStream",
    "OrderStreamEnv",
    "PolicyVersionMismatch",
    "StreamOrder",
    "TabularConfig",
    "TabularLearner",
    "UnknownDecision",
    "evaluate_offline",
    "gate_stats",
    "load_gate",
    "load_policy",
    "save_policy",
]
