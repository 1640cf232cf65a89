"""Stable-Baselines3 learners on the order stream: DQN (the Q-learning family), A2C and PPO
(actor-critic), and their export to a plain :class:`~gpt2_agent.rl.policies.NetworkPolicy`.

SB3 saves models as zip files with pickles inside; those never enter the registry. What is kept
is the policy network's ``state_dict``: DQN's Q-network, or the actor's layers plus its action
head, copied into an :class:`~gpt2_agent.rl.policies.MLP` of the same shape and stored as
safetensors (see :mod:`gpt2_agent.rl.artifact`).

Defaults suit the problem: ``gamma = 0`` (orders do not depend on earlier decisions), small
networks (two layers of 32), and DQN exploring between 0.1 and 0.01 (SB3's epsilon-greedy).
Every hyper-parameter can be overridden with keyword arguments of the SB3 class.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from torch import nn

from gpt2_agent.rl.env import OrderStreamEnv
from gpt2_agent.rl.policies import MLP, NetworkPolicy

log = logging.getLogger(__name__)

Algo = Literal["dqn", "a2c", "ppo"]
SB3_ALGOS: tuple[Algo, ...] = ("dqn", "a2c", "ppo")
NET_ARCH = [32, 32]

DEFAULTS: dict[str, dict[str, Any]] = {
    "dqn": {
        "learning_rate": 1e-3,
        "buffer_size": 50_000,
        "learning_starts": 100,
        "batch_size": 64,
        "gamma": 0.0,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update_interval": 200,
        "exploration_fraction": 0.05,
        "exploration_initial_eps": 0.1,
        "exploration_final_eps": 0.01,
    },
    "a2c": {"learning_rate": 1e-3, "n_steps": 16, "gamma": 0.0, "ent_coef": 0.0},
    "ppo": {
        "learning_rate": 1e-3,
        "n_steps": 256,
        "batch_size": 64,
        "n_epochs": 4,
        "gamma": 0.0,
        "gae_lambda": 1.0,
        "ent_coef": 0.0,
    },
}


def make_model(algo: Algo, env: OrderStreamEnv, *, seed: int = 0, **overrides: Any) -> Any:
    """A fresh SB3 model of ``algo`` on ``env`` (``overrides`` are keyword arguments of its class)."""
    from stable_baselines3 import A2C, DQN, PPO

    classes: dict[str, Any] = {"dqn": DQN, "a2c": A2C, "ppo": PPO}
    if algo not in classes:
        raise ValueError(f"algorithm {algo!r} unknown; use one of {list(SB3_ALGOS)}")
    kwargs = {**DEFAULTS[algo], **overrides}
    policy_kwargs = kwargs.pop("policy_kwargs", {"net_arch": list(NET_ARCH)})
    return classes[algo](
        "MlpPolicy", env, seed=seed, policy_kwargs=policy_kwargs, device="cpu", verbose=0, **kwargs
    )


def train(algo: Algo, env: OrderStreamEnv, total_timesteps: int, *, seed: int = 0, **overrides: Any) -> Any:
    """Train ``algo`` on ``env`` for ``total_timesteps`` orders and return the SB3 model."""
    model = make_model(algo, env, seed=seed, **overrides)
    model.learn(total_timesteps=total_timesteps)
    return model


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _activation(module: nn.Module) -> Literal["relu", "tanh"]:
    for m in module.modules():
        if isinstance(m, nn.Tanh):
            return "tanh"
        if isinstance(m, nn.ReLU):
            return "relu"
    return "relu"


def export(model: Any, *, epsilon: float = 0.0) -> NetworkPolicy:
    """The policy network of an SB3 model as a :class:`NetworkPolicy` (weights copied).

    DQN: the Q-network (greedy on Q-values). A2C/PPO: the actor's hidden layers and its action
    head (softmax over the logits, as SB3 samples).
    """
    name = type(model).__name__.lower()
    if name == "dqn":
        source: nn.Module = model.q_net.q_net
        layers = _linears(source)
        activation = _activation(source)
        output: Literal["q", "logits"] = "q"
    elif name in ("a2c", "ppo"):
        hidden = model.policy.mlp_extractor.policy_net
        layers = [*_linears(hidden), model.policy.action_net]
        activation = _activation(hidden)
        output = "logits"
    else:
        raise ValueError(f"cannot export a {type(model).__name__} model; use DQN, A2C or PPO")
    sizes = [layers[0].in_features] + [layer.out_features for layer in layers]
    net = MLP(sizes, activation)
    with torch.no_grad():
        for mine, theirs in zip(_linears(net), layers, strict=True):
            mine.weight.copy_(theirs.weight.detach().cpu())
            mine.bias.copy_(theirs.bias.detach().cpu())
    return NetworkPolicy(net, output, epsilon=epsilon)


__all__ = ["DEFAULTS", "SB3_ALGOS", "Algo", "export", "make_model", "train"]
