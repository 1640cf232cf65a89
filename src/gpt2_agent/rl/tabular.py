"""Tabular SARSA and Q-learning over discretised observations: the transparent baseline.

The table holds the expected cost of each action in each state (costs are negative rewards, so
the greedy action is the cheapest). After an order's outcome is known::

    Q-learning:  Q(s, a) += alpha * (cost + gamma * min_b Q(s', b) - Q(s, a))
    SARSA:       Q(s, a) += alpha * (cost + gamma * Q(s', a')      - Q(s, a))

``alpha`` is ``1 / visits`` (a running mean) until it reaches ``alpha_min``, so the table keeps
tracking a business that changes. Orders do not depend on earlier decisions, so the right
discount is ``gamma = 0`` (the default); then both rules are the same running mean of costs,
and they differ only when a discount is set.

Two things make the learner cheap to run live from the first order:

- **Cost-model prior**: the table starts at the expected costs the cost model gives when the audit
  model's probability is taken at face value (:meth:`CostModel.expected_costs`), worth
  ``prior_weight`` outcomes; learning corrects it where the model is miscalibrated or wrong.
- **Outcome-informed updates** (``counterfactual=True``): an outcome often reveals what the other
  actions would have cost (a reviewer's rejection says an approval would have been a
  chargeback), and those entries are updated too. Exploration escalates (a person decides),
  which is cheap and reveals the most.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.policies import Discretizer, TabularPolicy

FloatArray = npt.NDArray[np.float64]
Method = Literal["q_learning", "sarsa"]


@dataclass(frozen=True)
class TabularConfig:
    """Hyper-parameters of the tabular learners.

    :param method: ``q_learning`` or ``sarsa``.
    :param gamma: discount of the next order's value (0: orders are independent).
    :param alpha_min: the smallest step size (how fast old outcomes are forgotten).
    :param prior_weight: outcomes the cost-model prior is worth (0: start from zero costs).
    :param epsilon_min: exploration floor.
    :param epsilon_max: exploration cap.
    :param explore_mode: ``escalate`` (ask a person) or ``uniform``.
    :param counterfactual: also update the actions an outcome reveals.
    """

    method: Method = "q_learning"
    gamma: float = 0.0
    alpha_min: float = 0.02
    prior_weight: float = 3.0
    epsilon_min: float = 0.01
    epsilon_max: float = 0.1
    explore_mode: str = "escalate"
    counterfactual: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("q_learning", "sarsa"):
            raise ValueError(f"method must be 'q_learning' or 'sarsa' (got {self.method!r})")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1) (got {self.gamma})")
        if not 0.0 < self.alpha_min <= 1.0:
            raise ValueError(f"alpha_min must be in (0, 1] (got {self.alpha_min})")
        if self.prior_weight < 0:
            raise ValueError(f"prior_weight must be >= 0 (got {self.prior_weight})")
        if not 0.0 <= self.epsilon_min <= self.epsilon_max <= 1.0:
            raise ValueError(
                f"need 0 <= epsilon_min <= epsilon_max <= 1 (got {self.epsilon_min}, {self.epsilon_max})"
            )


class TabularLearner:
    """SARSA or Q-learning on a :class:`TabularPolicy`'s cost table.

    :param discretizer: observation -> table row.
    :param config: hyper-parameters.
    :param prior: the cost model for the prior (None: the table starts at zero).
    """

    def __init__(
        self,
        discretizer: Discretizer | None = None,
        config: TabularConfig | None = None,
        *,
        prior: CostModel | None = None,
    ) -> None:
        self.discretizer = discretizer or Discretizer()
        self.config = config or TabularConfig()
        n = self.discretizer.n_states
        if prior is not None and self.config.prior_weight > 0:
            p_mid, a_mid = self.discretizer.representatives()
            costs = prior.expected_costs(a_mid, p_mid)
            weight = self.config.prior_weight
        else:
            costs, weight = np.zeros((n, 3)), 0.0
        self.policy = TabularPolicy(
            self.discretizer,
            costs,
            np.zeros((n, 3)),
            epsilon_min=self.config.epsilon_min,
            epsilon_max=self.config.epsilon_max,
            explore_mode=self.config.explore_mode,
        )
        self._prior_weight = weight
        self.updates = 0

    @property
    def costs(self) -> FloatArray:
        """The table: expected cost per (state, action)."""
        return self.policy.costs

    def probabilities(self, obs: FloatArray) -> FloatArray:
        """The current policy's action probabilities (with exploration)."""
        return self.policy.probabilities(obs)

    def greedy_policy(self) -> TabularPolicy:
        """A copy of the current table without exploration."""
        return TabularPolicy(self.discretizer, self.costs.copy(), self.policy.counts.copy())

    def update(
        self,
        state: int,
        action: int,
        cost: float,
        *,
        next_state: int | None = None,
        next_action: int | None = None,
        revealed: Mapping[int, float] | None = None,
    ) -> None:
        """Learn from one outcome: ``action`` in ``state`` cost ``cost``.

        :param next_state: the next order's state (needed when ``gamma > 0``).
        :param next_action: the action taken there (SARSA with ``gamma > 0``).
        :param revealed: ``{action: cost}`` the outcome reveals for other actions.
        """
        bootstrap = 0.0
        if self.config.gamma > 0 and next_state is not None:
            row = self.costs[next_state]
            if self.config.method == "sarsa" and next_action is not None:
                bootstrap = float(row[next_action])
            else:
                bootstrap = float(row.min())
        self._learn(state, action, cost + self.config.gamma * bootstrap)
        if self.config.counterfactual and revealed:
            for other, other_cost in revealed.items():
                if other != action and np.isfinite(other_cost):
                    self._learn(state, int(other), float(other_cost) + self.config.gamma * bootstrap)
        self.updates += 1

    def _learn(self, state: int, action: int, target: float) -> None:
        counts = self.policy.counts
        counts[state, action] += 1.0
        alpha = max(1.0 / (counts[state, action] + self._prior_weight), self.config.alpha_min)
        self.costs[state, action] += alpha * (target - self.costs[state, action])


__all__ = ["Method", "TabularConfig", "TabularLearner"]
