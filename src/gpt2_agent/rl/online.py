"""Running policies over a stream: fixed policies, the hindsight-best thresholds, and learners
online from the first order.

- :func:`evaluate` gives a fixed policy's expected cost on every order (exact: the cost of each
  action weighted by its probability after the hard rules).
- :func:`hindsight_thresholds` finds the best pair of fixed thresholds on a stream, knowing every
  outcome in advance: the oracle no fixed-threshold gate can beat on that stream.
- :func:`run_tabular` lets a tabular learner decide every order in turn, learning from each
  outcome once it arrives (``delay`` orders later: chargebacks take time).
- :func:`run_sb3` does the same for an SB3 learner: its whole training run *is* the stream, so
  every exploratory mistake it makes while learning is paid for.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.env import OrderStreamEnv
from gpt2_agent.rl.features import APPROVE, AUTOMATED, ESCALATE, REJECT
from gpt2_agent.rl.policies import Policy, ThresholdPolicy, sample_actions
from gpt2_agent.rl.safety import HardRules
from gpt2_agent.rl.stream import OrderStream
from gpt2_agent.rl.tabular import TabularLearner

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class RunResult:
    """What a policy did on a stream, order by order."""

    name: str
    costs: FloatArray  # cost paid per order (expected cost for fixed policies)
    automation: FloatArray  # probability (0/1 for sampled runs) that the order was automated
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return float(self.costs.sum())

    @property
    def cost_per_order(self) -> float:
        return float(self.costs.mean()) if len(self.costs) else 0.0

    @property
    def automation_rate(self) -> float:
        return float(self.automation.mean()) if len(self.automation) else 0.0

    def cumulative(self) -> FloatArray:
        return np.asarray(np.cumsum(self.costs), dtype=np.float64)

    def window(self, start: int, stop: int | None = None) -> dict[str, float]:
        """Cost per order and automation rate over orders ``start:stop``."""
        c, a = self.costs[start:stop], self.automation[start:stop]
        return {
            "cost_per_order": float(c.mean()) if len(c) else 0.0,
            "automation_rate": float(a.mean()) if len(a) else 0.0,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total_cost": round(self.total, 2),
            "cost_per_order": round(self.cost_per_order, 4),
            "automation_rate": round(self.automation_rate, 4),
            "seconds": round(self.seconds, 2),
            **self.details,
        }


def evaluate(
    policy: Policy, stream: OrderStream, costs: CostModel, rules: HardRules, *, name: str = ""
) -> RunResult:
    """Expected cost and automation of a fixed policy on every order of ``stream``."""
    started = time.perf_counter()
    probs = rules.fold(policy.probabilities(stream.obs), stream.probability, stream.amount)
    table = stream.costs(costs)
    return RunResult(
        name=name or policy.kind,
        costs=np.asarray((probs * table).sum(axis=1), dtype=np.float64),
        automation=np.asarray(probs[:, APPROVE] + probs[:, REJECT], dtype=np.float64),
        seconds=time.perf_counter() - started,
    )


def hindsight_thresholds(
    stream: OrderStream, costs: CostModel, rules: HardRules
) -> tuple[ThresholdPolicy, float]:
    """The pair of thresholds with the lowest total cost on ``stream`` (and that cost).

    Exact over all pairs: orders sorted by probability, a threshold pair splits them into
    reject | escalate | approve, and prefix sums give every split's cost in O(n).
    """
    n = len(stream)
    table = stream.costs(costs)
    allowed = rules.allowed(stream.probability, stream.amount)
    approve = np.where(allowed[:, APPROVE], table[:, APPROVE], table[:, ESCALATE])
    reject = np.where(allowed[:, REJECT], table[:, REJECT], table[:, ESCALATE])
    escalate = table[:, ESCALATE]
    order = np.argsort(stream.probability, kind="stable")
    p = stream.probability[order]
    # Split points: thresholds fall between distinct probabilities only.
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(p) > 0) + 1, [n]])
    rej_prefix = np.concatenate([[0.0], np.cumsum(reject[order])])
    esc_prefix = np.concatenate([[0.0], np.cumsum(escalate[order])])
    app_suffix = np.concatenate([np.cumsum(approve[order][::-1])[::-1], [0.0]])
    # total(ir, ia) = rej_prefix[ir] + esc_prefix[ia] - esc_prefix[ir] + app_suffix[ia], ir <= ia
    left = rej_prefix[cuts] - esc_prefix[cuts]
    best_left = np.minimum.accumulate(left)
    best_at = np.zeros(len(cuts), dtype=np.int64)
    for k in range(1, len(cuts)):  # argmin of the running minimum
        best_at[k] = k if left[k] < best_left[k - 1] else best_at[k - 1]
    totals = best_left + esc_prefix[cuts] + app_suffix[cuts]
    ka = int(np.argmin(totals))
    kr = int(best_at[ka])

    def between(k: int) -> float:
        """A probability between the orders before cut ``k`` and from it on."""
        lo = p[cuts[k] - 1] if cuts[k] > 0 else -1e-9
        hi = p[cuts[k]] if cuts[k] < n else 1.0 + 1e-9
        return float((lo + hi) / 2.0)

    approve_min = min(between(ka), 1.0 + 1e-12)
    reject_max = max(between(kr), 0.0)
    if reject_max >= approve_min:
        reject_max = float(np.nextafter(approve_min, -1.0))
    return ThresholdPolicy(approve_min, reject_max), float(totals[ka])


def run_tabular(
    learner: TabularLearner,
    stream: OrderStream,
    costs: CostModel,
    rules: HardRules,
    *,
    seed: int = 0,
    delay: int = 0,
    name: str = "",
) -> RunResult:
    """Decide every order in turn with ``learner``, learning from each outcome ``delay`` orders later."""
    started = time.perf_counter()
    env = OrderStreamEnv(stream, costs, rules, episode_length=len(stream))
    rng = np.random.default_rng(seed)
    states = learner.discretizer.index(stream.obs)
    allowed = rules.allowed(stream.probability, stream.amount)
    n = len(stream)
    paid = np.zeros(n)
    automated = np.zeros(n)
    pending: deque[tuple[int, int, float, dict[int, float]]] = deque()
    previous: tuple[int, int, float, dict[int, float]] | None = None
    env.reset(seed=seed)
    for i in range(n):
        probs = learner.probabilities(stream.obs[i : i + 1])
        probs[0] = np.where(allowed[i], probs[0], 0.0)
        probs[0, ESCALATE] += 1.0 - probs[0].sum()
        action = int(sample_actions(probs, rng)[0])
        _, _, _, _, info = env.step(action)
        paid[i] = info["cost"]
        automated[i] = float(info["action"] in AUTOMATED)
        pending.append((i, int(info["action"]), float(info["cost"]), info["revealed"]))
        while pending and pending[0][0] + delay <= i:
            j, a, c, revealed = pending.popleft()
            _learn(learner, states, j, a, c, revealed, previous)
            previous = (j, a, c, revealed)
    return RunResult(
        name=name or learner.config.method,
        costs=paid,
        automation=automated,
        seconds=time.perf_counter() - started,
        details={"delay": delay, "updates": learner.updates},
    )


def _learn(
    learner: TabularLearner,
    states: npt.NDArray[np.int64],
    j: int,
    action: int,
    cost: float,
    revealed: dict[int, float],
    previous: tuple[int, int, float, dict[int, float]] | None,
) -> None:
    # With gamma > 0 an order's entry bootstraps on its successor, so it is learned one order
    # late; the last order of the stream has none.
    if learner.config.gamma > 0:
        if previous is not None:
            pj, pa, pc, prev_revealed = previous
            learner.update(
                int(states[pj]), pa, pc, next_state=int(states[j]), next_action=action, revealed=prev_revealed
            )
        if j == len(states) - 1:
            learner.update(int(states[j]), action, cost, revealed=revealed)
        return
    learner.update(int(states[j]), action, cost, revealed=revealed)


def run_sb3(
    algo: str,
    stream: OrderStream,
    costs: CostModel,
    rules: HardRules,
    *,
    seed: int = 0,
    episode_length: int = 256,
    name: str = "",
    prior: bool = True,
    delay: int = 0,
    reward_scale: float | None = None,
    counterfactual: bool = False,
    cost_cap: float | None = None,
    **overrides: Any,
) -> tuple[RunResult, Any]:
    """Train an SB3 learner on ``stream`` in time order, one pass: every order it sees is an
    order it decides. Returns what it paid and the trained model.

    :param prior: warm-start the network from the cost model (:func:`~gpt2_agent.rl.sb3.warm_start`).
        A warm-started DQN acts on it from the first order (SB3 would act at random until
        ``learning_starts``) and explores with a constant 1% of random actions.
    :param delay: DQN learns from an outcome ``delay`` orders after the decision
        (:class:`~gpt2_agent.rl.sb3.OutcomeReplayBuffer`), as :func:`run_tabular` does. A2C and PPO
        are on-policy: they learn from each rollout (``n_steps`` orders) as soon as it is
        collected, so they see outcomes 0 to ``n_steps`` orders late whatever ``delay`` says.
    :param reward_scale: rewards are ``-cost / reward_scale`` (default:
        :data:`~gpt2_agent.rl.sb3.REWARD_SCALE` of ``algo``).
    :param counterfactual: DQN also learns the costs an outcome reveals for the actions not
        taken (off by default: on the demo stream it cost more than it saved).
    :param cost_cap: DQN learns costs capped here (default: the costliest approval the hard
        rules allow, plus a review; a larger cost never decides anything, an escalation is
        always cheaper).
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from gpt2_agent.rl.sb3 import REWARD_SCALE, OutcomeReplayBuffer, make_model, warm_start

    n = len(stream)
    paid: list[float] = []
    automated: list[float] = []

    class Recorder(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                if len(paid) < n:
                    paid.append(float(info["cost"]))
                    automated.append(float(info["automated"]))
            return True

    started = time.perf_counter()
    scale = float(reward_scale if reward_scale is not None else REWARD_SCALE.get(algo, 100.0))
    env = OrderStreamEnv(stream, costs, rules, episode_length=episode_length, reward_scale=scale)
    if algo == "dqn":
        if cost_cap is None:
            cost_cap = float(costs.wrong_approval(float(rules.max_amount))) + costs.review_cost
        overrides.setdefault("replay_buffer_class", OutcomeReplayBuffer)
        overrides.setdefault(
            "replay_buffer_kwargs",
            {
                "delay": delay,
                "allowed": rules.allowed(stream.probability, stream.amount),
                "reward_scale": scale,
                "counterfactual": counterfactual,
                "cost_cap": cost_cap,
            },
        )
        if prior:
            # SB3 acts at random until ``learning_starts``; a warm-started network knows better
            # (and trains only once the first outcome is in: see make_model's DQN).
            overrides.setdefault("learning_starts", 0)
            # Exploration stays small and constant: a random action is paid for (a random
            # rejection of a large good order costs hundreds), but a network that never tries an
            # action can stay wrong about it.
            overrides.setdefault("exploration_initial_eps", 0.01)
            overrides.setdefault("exploration_final_eps", 0.01)
    model = make_model(algo, env, seed=seed, **overrides)  # type: ignore[arg-type]
    if prior:
        warm_start(model, costs, rules, reward_scale=scale, seed=seed)
    model.learn(total_timesteps=n, callback=Recorder())
    return (
        RunResult(
            name=name or algo,
            costs=np.asarray(paid, dtype=np.float64),
            automation=np.asarray(automated, dtype=np.float64),
            seconds=time.perf_counter() - started,
            details={"delay": delay if algo == "dqn" else 0},
        ),
        model,
    )


__all__ = ["RunResult", "evaluate", "hindsight_thresholds", "run_sb3", "run_tabular"]
