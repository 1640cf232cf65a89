"""Gate policies: from observations to the probability of each action.

Every policy answers :meth:`Policy.probabilities` for a batch of observations (``(n, 3)``, rows
sum to 1, in :data:`~gpt2_agent.rl.features.ACTIONS` order), before the hard rules; the
environment, the live gate and off-policy evaluation apply
:meth:`~gpt2_agent.rl.safety.HardRules.fold` afterwards. Policies:

- :class:`FixedPolicy`: always the same action (``always escalate`` is the reference).
- :class:`ThresholdPolicy`: the classic pair of probability thresholds.
- :class:`TabularPolicy`: greedy on a table of expected costs over discretised observations
  (what SARSA and Q-learning learn; see :mod:`gpt2_agent.rl.tabular`), with bounded exploration.
- :class:`NetworkPolicy`: a small MLP, either Q-values (DQN: greedy) or action logits
  (A2C/PPO: softmax), rebuilt from a ``state_dict`` (see :mod:`gpt2_agent.rl.sb3`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from gpt2_agent.rl.features import (
    APPROVE,
    ESCALATE,
    MISMATCH_COLUMN,
    NEW_ACCOUNT_COLUMN,
    OBS_DIM,
    REJECT,
    amount_of,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@runtime_checkable
class Policy(Protocol):
    """Maps observations to action probabilities."""

    @property
    def kind(self) -> str:
        """What sort of policy this is (``tabular``, ``network``, ``thresholds``, ``fixed``)."""
        ...

    def probabilities(self, obs: FloatArray) -> FloatArray:
        """``(n, 3)`` probability of each action for each observation (before the hard rules)."""
        ...


def greedy(scores: FloatArray, *, lowest: bool) -> FloatArray:
    """One-hot rows of the best action; ties go to the later action (escalate is the safe one)."""
    scores = np.asarray(scores, dtype=np.float64)
    flipped = scores[:, ::-1]
    idx = 2 - (np.argmin(flipped, axis=1) if lowest else np.argmax(flipped, axis=1))
    out = np.zeros_like(scores)
    out[np.arange(len(scores)), idx] = 1.0
    return out


def explore(probs: FloatArray, epsilon: FloatArray | float, *, mode: str = "escalate") -> FloatArray:
    """Mix ``epsilon`` of exploration into ``probs``.

    ``"escalate"`` (the default) explores by asking a person: cheap, and the reviewer's decision
    reveals what every action would have cost. ``"uniform"`` spreads the mass over all actions.
    """
    eps = np.broadcast_to(np.asarray(epsilon, dtype=np.float64), (len(probs),))[:, None]
    if mode == "uniform":
        target = np.full_like(probs, 1.0 / 3.0)
    elif mode == "escalate":
        target = np.zeros_like(probs)
        target[:, ESCALATE] = 1.0
    else:
        raise ValueError(f"exploration mode must be 'escalate' or 'uniform' (got {mode!r})")
    return np.asarray((1.0 - eps) * probs + eps * target, dtype=np.float64)


@dataclass(frozen=True)
class FixedPolicy:
    """Always the same action."""

    action: int = ESCALATE
    kind: str = "fixed"

    def probabilities(self, obs: FloatArray) -> FloatArray:
        out = np.zeros((len(obs), 3))
        out[:, self.action] = 1.0
        return out


@dataclass(frozen=True)
class ThresholdPolicy:
    """Approve at ``probability >= approve_min``, reject at ``probability <= reject_max``, else escalate.

    A single threshold ``t`` (approve above, reject below, never escalate) is
    ``ThresholdPolicy(t, t - tiny)``: use :meth:`single`.
    """

    approve_min: float
    reject_max: float
    kind: str = "thresholds"

    def __post_init__(self) -> None:
        if not 0.0 <= self.reject_max < self.approve_min <= 1.0 + 1e-12:
            raise ValueError(
                "thresholds need 0 <= reject_max < approve_min <= 1 "
                f"(got {self.reject_max}, {self.approve_min})"
            )

    @classmethod
    def single(cls, threshold: float) -> ThresholdPolicy:
        """Approve at or above ``threshold``, reject below it."""
        return cls(threshold, np.nextafter(threshold, -1.0))

    def probabilities(self, obs: FloatArray) -> FloatArray:
        p = np.asarray(obs)[:, 0]
        out = np.zeros((len(p), 3))
        approve = p >= self.approve_min
        reject = ~approve & (p <= self.reject_max)
        out[approve, APPROVE] = 1.0
        out[reject, REJECT] = 1.0
        out[~approve & ~reject, ESCALATE] = 1.0
        return out


@dataclass(frozen=True)
class Discretizer:
    """Bins observations into table rows: probability bins x amount bins (x new account x
    address mismatch). ``*_edges`` are the inner bin edges."""

    p_edges: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
    amount_edges: tuple[float, ...] = (100.0, 200.0, 350.0, 500.0)
    new_account: bool = True
    address_mismatch: bool = True

    @property
    def n_states(self) -> int:
        n = (len(self.p_edges) + 1) * (len(self.amount_edges) + 1)
        return n * (2 if self.new_account else 1) * (2 if self.address_mismatch else 1)

    def index(self, obs: FloatArray) -> IntArray:
        """The table row of each observation."""
        obs = np.asarray(obs, dtype=np.float64).reshape(-1, OBS_DIM)
        p_bin = np.searchsorted(np.asarray(self.p_edges), obs[:, 0], side="right")
        a_bin = np.searchsorted(np.asarray(self.amount_edges), amount_of(obs) - 1e-6, side="right")
        idx = p_bin * (len(self.amount_edges) + 1) + a_bin
        if self.new_account:
            idx = idx * 2 + (obs[:, NEW_ACCOUNT_COLUMN] > 0.5)
        if self.address_mismatch:
            idx = idx * 2 + (obs[:, MISMATCH_COLUMN] > 0.5)
        return np.asarray(idx, dtype=np.int64)

    def representatives(self) -> tuple[FloatArray, FloatArray]:
        """A typical probability and amount per table row (for the cost-model prior)."""
        p_bounds = np.concatenate([[0.0], self.p_edges, [1.0]])
        p_mid = (p_bounds[:-1] + p_bounds[1:]) / 2.0
        a_bounds = np.concatenate([[0.0], self.amount_edges, [2.0 * self.amount_edges[-1]]])
        a_mid = (a_bounds[:-1] + a_bounds[1:]) / 2.0
        p_rows, a_rows = np.meshgrid(p_mid, a_mid, indexing="ij")
        reps = (
            4
            if self.new_account and self.address_mismatch
            else 2
            if self.new_account or self.address_mismatch
            else 1
        )
        return np.repeat(p_rows.ravel(), reps), np.repeat(a_rows.ravel(), reps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "p_edges": list(self.p_edges),
            "amount_edges": list(self.amount_edges),
            "new_account": self.new_account,
            "address_mismatch": self.address_mismatch,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Discretizer:
        return cls(
            p_edges=tuple(float(x) for x in data["p_edges"]),
            amount_edges=tuple(float(x) for x in data["amount_edges"]),
            new_account=bool(data["new_account"]),
            address_mismatch=bool(data["address_mismatch"]),
        )


class TabularPolicy:
    """Greedy on a table of expected costs (``costs[state, action]``), exploring with a
    probability that shrinks with the state's visits and stays within ``[epsilon_min, epsilon_max]``.

    :param discretizer: observation -> table row.
    :param costs: ``(n_states, 3)`` expected cost of each action (lower is better).
    :param counts: ``(n_states, 3)`` outcomes seen per entry (for exploration); default zeros.
    """

    kind = "tabular"

    def __init__(
        self,
        discretizer: Discretizer,
        costs: FloatArray,
        counts: FloatArray | None = None,
        *,
        epsilon_min: float = 0.0,
        epsilon_max: float = 0.0,
        explore_mode: str = "escalate",
    ) -> None:
        costs = np.asarray(costs, dtype=np.float64)
        if costs.shape != (discretizer.n_states, 3):
            raise ValueError(f"cost table has shape {costs.shape}, expected {(discretizer.n_states, 3)}")
        if not 0.0 <= epsilon_min <= epsilon_max <= 1.0:
            raise ValueError(f"need 0 <= epsilon_min <= epsilon_max <= 1 (got {epsilon_min}, {epsilon_max})")
        self.discretizer = discretizer
        self.costs = costs
        self.counts = np.zeros_like(costs) if counts is None else np.asarray(counts, dtype=np.float64)
        self.epsilon_min = epsilon_min
        self.epsilon_max = epsilon_max
        self.explore_mode = explore_mode

    def epsilon(self, states: IntArray) -> FloatArray:
        """Exploration per state: ``epsilon_max / sqrt(1 + visits / 10)``, kept within the bounds."""
        visits = self.counts[states].sum(axis=1)
        raw = self.epsilon_max / np.sqrt(1.0 + visits / 10.0)
        return np.asarray(np.clip(raw, self.epsilon_min, self.epsilon_max), dtype=np.float64)

    def probabilities(self, obs: FloatArray) -> FloatArray:
        states = self.discretizer.index(obs)
        probs = greedy(self.costs[states], lowest=True)
        if self.epsilon_max > 0:
            probs = explore(probs, self.epsilon(states), mode=self.explore_mode)
        return probs


class MLP(nn.Module):
    """A plain multilayer perceptron: ``Linear`` layers with one activation between them.

    The layer names (``layers.0``, ``layers.2``...) are what the safetensors file stores.
    """

    def __init__(self, sizes: Sequence[int], activation: Literal["relu", "tanh"] = "relu") -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least an input and an output size (got {list(sizes)})")
        act: type[nn.Module] = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(act())
        self.layers = nn.Sequential(*layers)
        self.sizes = list(sizes)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, OBS_DIM) -> (B, 3)
        out: torch.Tensor = self.layers(x)
        return out


class NetworkPolicy:
    """An MLP over observations: Q-values (``output="q"``, greedy, highest value wins) or action
    logits (``output="logits"``, softmax), with bounded exploration like the tabular policy.

    :param epsilon: exploration mixed in (escalate mode by default).
    :param deterministic: for logits, take the most likely action instead of sampling the softmax.
    """

    kind = "network"

    def __init__(
        self,
        net: MLP,
        output: Literal["q", "logits"],
        *,
        epsilon: float = 0.0,
        explore_mode: str = "escalate",
        deterministic: bool = False,
    ) -> None:
        if output not in ("q", "logits"):
            raise ValueError(f"output must be 'q' or 'logits' (got {output!r})")
        self.net = net.eval()
        self.output = output
        self.epsilon = epsilon
        self.explore_mode = explore_mode
        self.deterministic = deterministic

    def scores(self, obs: FloatArray) -> FloatArray:
        """The network's raw outputs."""
        with torch.no_grad():
            out = self.net(torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(-1, OBS_DIM)))
        return out.double().numpy()

    def probabilities(self, obs: FloatArray) -> FloatArray:
        scores = self.scores(obs)
        if self.output == "q" or self.deterministic:
            probs = greedy(scores, lowest=False)
        else:
            z = scores - scores.max(axis=1, keepdims=True)
            e = np.exp(z)
            probs = e / e.sum(axis=1, keepdims=True)
        if self.epsilon > 0:
            probs = explore(probs, self.epsilon, mode=self.explore_mode)
        return probs


def sample_actions(probs: FloatArray, rng: np.random.Generator) -> IntArray:
    """One action per row, drawn from its probabilities."""
    u = rng.random(len(probs))[:, None]
    cum = np.cumsum(probs, axis=1)
    return np.asarray(np.minimum((u > cum).sum(axis=1), 2), dtype=np.int64)


__all__ = [
    "MLP",
    "Discretizer",
    "FixedPolicy",
    "NetworkPolicy",
    "Policy",
    "TabularPolicy",
    "ThresholdPolicy",
    "explore",
    "greedy",
    "sample_actions",
]
