"""Stable-Baselines3 learners on the order stream: DQN (the Q-learning family), A2C and PPO
(actor-critic), and their export to a plain :class:`~gpt2_agent.rl.policies.NetworkPolicy`.

SB3 saves models as zip files with pickles inside; those never enter the registry. What is kept
is the policy network's ``state_dict``: DQN's Q-network, or the actor's layers plus its action
head, copied into an :class:`~gpt2_agent.rl.policies.MLP` of the same shape and stored as
safetensors (see :mod:`gpt2_agent.rl.artifact`).

Defaults suit the problem: ``gamma = 0`` (orders do not depend on earlier decisions), small
networks (two layers of 32), and losses that do not cut the rare, large costs (a chargeback) that
should stop an approval: DQN's rewards are scaled so that its Huber loss stays quadratic
(:data:`REWARD_SCALE`), A2C and PPO neither clip gradients nor normalise advantages per batch.
Every hyper-parameter can be overridden with keyword arguments of the SB3 class.

On a live stream (:func:`~gpt2_agent.rl.online.run_sb3`) DQN keeps its outcomes in an
:class:`OutcomeReplayBuffer`, which lets an outcome in only ``delay`` orders after the decision.

:func:`warm_start` gives a network the prior the tabular learners start from (the cost model's
expected costs at the audit model's face value), so it does not pay for random decisions on the
first orders of a live stream.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Literal

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from torch import nn

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.env import OrderStreamEnv
from gpt2_agent.rl.features import ESCALATE, amount_of, observe_arrays
from gpt2_agent.rl.policies import MLP, NetworkPolicy, greedy
from gpt2_agent.rl.safety import HardRules

log = logging.getLogger(__name__)

Algo = Literal["dqn", "a2c", "ppo"]
SB3_ALGOS: tuple[Algo, ...] = ("dqn", "a2c", "ppo")
NET_ARCH = [32, 32]
REWARD_SCALE: dict[str, float] = {"dqn": 1000.0, "a2c": 100.0, "ppo": 100.0}
"""Rewards are ``-cost / REWARD_SCALE[algo]``. DQN's Huber loss is quadratic only for errors
below 1: at 1000 every cost an allowed approval can have (at most 515 with the default costs and
limit) is inside it, so the Q-values are means, not something between a mean and a median (which
underrates rare chargebacks and approves too much). A2C and PPO keep 100: their losses are not
clipped (see :data:`DEFAULTS`)."""

DEFAULTS: dict[str, dict[str, Any]] = {
    "dqn": {
        "learning_rate": 3e-4,
        "buffer_size": 50_000,
        "learning_starts": 100,
        "batch_size": 256,  # means over more outcomes: chargebacks are rare and heavy-tailed
        "gamma": 0.0,
        "train_freq": 4,
        "gradient_steps": 1,
        "target_update_interval": 200,
        # Without a warm start; a warm-started one explores 1% of the time (see run_sb3).
        "exploration_fraction": 0.05,
        "exploration_initial_eps": 0.1,
        "exploration_final_eps": 0.01,
    },
    # Gradient clipping (SB3's 0.5) and per-batch advantage normalisation cut exactly the rare,
    # large losses (a chargeback) that should stop an approval, so both are off: the policy
    # approved more and more while it learned. With them off, A2C learns fastest with Adam.
    "a2c": {
        "learning_rate": 1e-3,
        "n_steps": 64,
        "gamma": 0.0,
        "ent_coef": 0.0,
        "max_grad_norm": 100.0,
        "use_rms_prop": False,
    },
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 256,
        "batch_size": 64,
        "n_epochs": 4,
        "gamma": 0.0,
        "gae_lambda": 1.0,
        "ent_coef": 0.0,
        "max_grad_norm": 100.0,
        "normalize_advantage": False,
    },
}


class OutcomeReplayBuffer(ReplayBuffer):
    """DQN's replay buffer on an order stream: an order's outcome enters it only ``delay`` orders
    after the decision (chargebacks take time), and with it the costs the outcome reveals for the
    actions not taken (as the tabular learners' ``counterfactual`` updates: an escalation reveals
    all three, an approval also what a rejection would have cost).

    A revealed cost is stored as the cost of *asking* for that action, so an action the hard rules
    forbid on that order is stored with the escalation's cost (what the environment would charge).
    Orders do not depend on the agent's decisions, so such a transition is as valid as the one
    taken, for any ``gamma``.

    :param delay: orders between a decision and its outcome.
    :param allowed: ``(n, 3)`` which actions the hard rules allow on each order of the stream.
    :param reward_scale: the environment's reward scale (rewards are ``-cost / reward_scale``).
    :param counterfactual: also store the revealed costs of the actions not taken (off by
        default: on the demo stream it cost more than it saved).
    :param cost_cap: costs are stored capped at this (None: not capped).
    """

    def __init__(
        self,
        *args: Any,
        delay: int = 0,
        allowed: Any = None,
        reward_scale: float = 100.0,
        counterfactual: bool = False,
        cost_cap: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.delay = int(delay)
        self.allowed = allowed
        self.reward_scale = float(reward_scale)
        self.counterfactual = counterfactual
        self.cost_cap = cost_cap
        self.pending: deque[tuple[int, Any, Any, Any, Any, Any, list[dict[str, Any]]]] = deque()

    def add(self, obs: Any, next_obs: Any, action: Any, reward: Any, done: Any, infos: Any) -> None:
        # Copies: SB3's vectorised environment reuses its info list (and may reuse its arrays).
        infos = [dict(info) for info in infos]
        position = int(infos[0].get("position", 0)) if infos else 0
        arrays = (np.array(obs), np.array(next_obs), np.array(action), np.array(reward), np.array(done))
        self.pending.append((position, *arrays, infos))
        while self.pending and self.pending[0][0] + self.delay <= position:
            self._settle(*self.pending.popleft())

    def _settle(
        self, position: int, obs: Any, next_obs: Any, action: Any, reward: Any, done: Any, infos: Any
    ) -> None:
        if self.cost_cap is not None:
            reward = np.maximum(reward, -self.cost_cap / self.reward_scale)
        super().add(obs, next_obs, action, reward, done, infos)
        if not self.counterfactual or len(infos) != 1:
            return
        revealed: dict[int, float] = infos[0].get("revealed") or {}
        requested = int(np.asarray(action).reshape(-1)[0])
        for other in range(3):
            if other == requested:
                continue
            if self.allowed is None or self.allowed[position, other]:
                cost = revealed.get(other)
            else:
                cost = revealed.get(ESCALATE)
            if cost is None:
                continue
            if self.cost_cap is not None:
                cost = min(cost, self.cost_cap)
            super().add(
                obs,
                next_obs,
                np.array([other]),
                np.array([-float(cost) / self.reward_scale], dtype=np.float32),
                done,
                infos,
            )


def _online_dqn() -> Any:
    from stable_baselines3 import DQN

    class OnlineDQN(DQN):
        """SB3's DQN that waits for its first outcome instead of acting at random until then
        (SB3 ties both to ``learning_starts``): with delayed outcomes the replay buffer is empty
        for the first ``delay`` orders."""

        def train(self, gradient_steps: int, batch_size: int = 100) -> None:
            if self.replay_buffer is None or self.replay_buffer.size() == 0:
                return
            super().train(gradient_steps, batch_size)

    return OnlineDQN


def _is_dqn(model: Any) -> bool:
    from stable_baselines3 import DQN

    return isinstance(model, DQN)


def make_model(algo: Algo, env: OrderStreamEnv, *, seed: int = 0, **overrides: Any) -> Any:
    """A fresh SB3 model of ``algo`` on ``env`` (``overrides`` are keyword arguments of its class)."""
    from stable_baselines3 import A2C, PPO

    classes: dict[str, Any] = {"dqn": _online_dqn(), "a2c": A2C, "ppo": PPO}
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


def prior_observations(n: int, *, seed: int = 0) -> Any:
    """``n`` observations spread over the whole observation space (no order data involved):
    probabilities uniform and spread in log-odds, amounts log-uniform from 5 to 20,000."""
    rng = np.random.default_rng(seed)
    # Half uniform, half spread on the log-odds scale (most orders look safe to the audit model).
    p = np.where(rng.random(n) < 0.5, rng.random(n), 1.0 / (1.0 + np.exp(-rng.normal(2.0, 3.0, n))))
    amount = np.exp(rng.uniform(np.log(5.0), np.log(20_000.0), n))
    return observe_arrays(
        p,
        amount,
        new_account=(rng.random(n) < 0.3).astype(float),
        address_mismatch=(rng.random(n) < 0.2).astype(float),
        log2_ratio=rng.exponential(0.7, n),
        velocity=np.asarray(1.0 + rng.poisson(0.4, n), dtype=np.float64),
    )


def warm_start(
    model: Any,
    costs: CostModel,
    rules: HardRules,
    *,
    reward_scale: float = 100.0,
    steps: int = 1000,
    seed: int = 0,
) -> None:
    """Start a network where the tabular learners start: from the cost model's expected costs
    with the audit model's probability taken at face value (no outcomes are used).

    DQN: Q-values regressed to ``-expected cost / reward_scale`` (what the hard rules forbid
    costs what an escalation costs). A2C/PPO: the actor imitates the cheapest action, the critic
    its value.
    """
    obs = prior_observations(4096, seed=seed)
    p = obs[:, 0]
    expected = costs.expected_costs(amount_of(obs), p)
    allowed = rules.allowed(p, amount_of(obs))
    expected = np.where(allowed, expected, expected[:, [ESCALATE]])
    # Costs far above a review never decide anything (an escalation is always there), so they are
    # capped; the loss is measured in review costs so that the differences that do decide count.
    cap = 4.0 * max(costs.review_cost, 1e-6)
    unit = reward_scale / max(costs.review_cost, 1e-6)
    x = torch.as_tensor(obs, dtype=torch.float32)
    q_target = torch.as_tensor(-np.minimum(expected, cap) / reward_scale, dtype=torch.float32)
    best = torch.as_tensor(greedy(expected, lowest=True).argmax(axis=1), dtype=torch.long)  # ties: escalate
    gen = torch.Generator().manual_seed(seed)
    name = "dqn" if _is_dqn(model) else type(model).__name__.lower()
    if name == "dqn":
        net = model.q_net
        params = list(net.parameters())
    else:
        params = list(model.policy.parameters())
    optimizer = torch.optim.Adam(params, lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (256,), generator=gen)
        if name == "dqn":
            loss = nn.functional.mse_loss(net(x[idx]) * unit, q_target[idx] * unit)
        else:
            dist = model.policy.get_distribution(x[idx])
            values = model.policy.predict_values(x[idx]).squeeze(-1)
            loss = nn.functional.cross_entropy(dist.distribution.logits, best[idx]) + nn.functional.mse_loss(
                values * unit, q_target[idx].max(dim=1).values * unit
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if name == "dqn":
        model.q_net_target.load_state_dict(model.q_net.state_dict())


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
    name = "dqn" if _is_dqn(model) else type(model).__name__.lower()
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


__all__ = [
    "DEFAULTS",
    "REWARD_SCALE",
    "SB3_ALGOS",
    "Algo",
    "OutcomeReplayBuffer",
    "export",
    "make_model",
    "prior_observations",
    "train",
    "warm_start",
]
