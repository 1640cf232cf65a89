"""Off-policy evaluation: what would a new policy have cost on the orders the gate already logged?

The log holds, per decision, the observation ``x``, the action ``a`` the logging policy took,
the probability ``mu(a|x)`` with which it took it (the propensity) and the cost ``c`` that
followed. For a target policy ``pi`` (its probabilities after the hard rules):

- **IPS** (inverse propensity scoring): ``mean(pi(a|x) / mu(a|x) * c)``. Unbiased when ``mu``
  gives every action ``pi`` might take a positive probability; high variance when it rarely does.
- **SNIPS**: IPS divided by the mean weight (slightly biased, much less variance).
- **DR** (doubly robust): ``mean(sum_b pi(b|x) q(x, b) + pi(a|x) / mu(a|x) * (c - q(x, a)))``
  with a cost model ``q`` fitted on the log (:func:`fit_cost_table`): unbiased if either the
  propensities or ``q`` are right, and usually far less variance than IPS.

Each estimate comes with a standard error and the effective sample size of the weights
(``(sum w)^2 / sum w^2``); :func:`evaluate_offline` also reports how often the target agrees
with the logged action (``match``): near 0 means the log says little about the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.policies import Discretizer, Policy
from gpt2_agent.rl.safety import HardRules

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class OPEError(ValueError):
    """The logged data cannot evaluate a policy (empty, bad propensities, shapes that disagree)."""


@dataclass(frozen=True)
class LoggedData:
    """Logged gate decisions with their outcomes.

    :param obs: ``(n, OBS_DIM)`` observations.
    :param probability: the audit model's probability of approve (for the hard rules).
    :param amount: the order amounts (for the hard rules).
    :param action: the action taken (after the hard rules).
    :param propensity: the logging policy's probability of that action, in ``(0, 1]``.
    :param cost: the cost that followed.
    :param revealed: ``(n, 3)`` costs the outcomes reveal for every action (NaN: unknown); used
        to fit the direct-method cost model. Default: only the taken action's cost.
    """

    obs: FloatArray
    probability: FloatArray
    amount: FloatArray
    action: IntArray
    propensity: FloatArray
    cost: FloatArray
    revealed: FloatArray | None = None
    keys: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        n = len(self.action)
        for name in ("obs", "probability", "amount", "propensity", "cost"):
            if len(getattr(self, name)) != n:
                raise OPEError(f"logged {name} has {len(getattr(self, name))} rows for {n} actions")
        if n and (
            np.any(~np.isfinite(self.propensity)) or self.propensity.min() <= 0 or self.propensity.max() > 1
        ):
            raise OPEError("propensities must be in (0, 1]; a logged action had probability 0 or a bad value")
        if n and np.any(~np.isfinite(self.cost)):
            raise OPEError("every logged decision needs a known, finite cost")
        if n and (self.action.min() < 0 or self.action.max() > 2):
            raise OPEError("logged actions must be 0 (auto_approve), 1 (auto_reject) or 2 (escalate)")

    def __len__(self) -> int:
        return len(self.action)

    def revealed_costs(self) -> FloatArray:
        """``(n, 3)``: :attr:`revealed`, or only the taken action's cost."""
        if self.revealed is not None:
            return np.asarray(self.revealed, dtype=np.float64)
        out = np.full((len(self), 3), np.nan)
        out[np.arange(len(self)), self.action] = self.cost
        return out


@dataclass(frozen=True)
class Estimate:
    """A policy value estimate (mean cost per order) with its standard error."""

    value: float
    stderr: float
    ess: float  # effective sample size of the importance weights

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "stderr": self.stderr, "ess": self.ess}


def _mean_and_se(terms: FloatArray) -> tuple[float, float]:
    n = len(terms)
    if n == 0:
        raise OPEError("no logged decisions to evaluate on")
    mean = float(terms.mean())
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return mean, se


def _weights(target: FloatArray, data: LoggedData) -> FloatArray:
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (len(data), 3):
        raise OPEError(f"target probabilities have shape {target.shape}, expected {(len(data), 3)}")
    return np.asarray(target[np.arange(len(data)), data.action] / data.propensity, dtype=np.float64)


def _ess(w: FloatArray) -> float:
    s2 = float((w**2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def ips(target: FloatArray, data: LoggedData) -> Estimate:
    """Inverse propensity scoring of the target's mean cost per order."""
    w = _weights(target, data)
    value, se = _mean_and_se(w * data.cost)
    return Estimate(value, se, _ess(w))


def snips(target: FloatArray, data: LoggedData) -> Estimate:
    """Self-normalised IPS."""
    w = _weights(target, data)
    if w.sum() <= 0:
        raise OPEError("the target policy never takes a logged action; IPS cannot say anything")
    norm = w.mean()
    value = float((w * data.cost).sum() / w.sum())
    _, se = _mean_and_se(w * (data.cost - value) / norm)
    return Estimate(value, se, _ess(w))


def doubly_robust(target: FloatArray, data: LoggedData, q: FloatArray) -> Estimate:
    """Doubly robust estimate with the direct-method costs ``q`` (``(n, 3)``)."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (len(data), 3):
        raise OPEError(f"cost model predictions have shape {q.shape}, expected {(len(data), 3)}")
    w = _weights(target, data)
    rows = np.arange(len(data))
    terms = (np.asarray(target) * q).sum(axis=1) + w * (data.cost - q[rows, data.action])
    value, se = _mean_and_se(terms)
    return Estimate(value, se, _ess(w))


def fit_cost_table(
    data: LoggedData,
    discretizer: Discretizer | None = None,
    *,
    prior: CostModel | None = None,
    prior_weight: float = 3.0,
    folds: int = 2,
) -> FloatArray:
    """Direct-method costs ``q(x, a)`` for every logged row: per (state, action), the mean of the
    revealed costs, shrunk toward the cost model's expectation (or the action's overall mean).

    Fitted by cross-fitting over ``folds`` folds (each row is predicted by a table fitted on the
    other folds), so DR's correction term is not fooled by the table having seen the row.
    """
    disc = discretizer or Discretizer()
    states = disc.index(data.obs)
    revealed = data.revealed_costs()
    n = len(data)
    if prior is not None:
        base = prior.expected_costs(data.amount, data.probability)
    else:
        means = np.array(
            [np.nanmean(revealed[:, a]) if np.any(np.isfinite(revealed[:, a])) else 0.0 for a in range(3)]
        )
        base = np.tile(means, (n, 1))
    fold = np.arange(n) % max(folds, 1) if folds > 1 else np.zeros(n, dtype=np.int64)
    out = np.empty((n, 3))
    for k in np.unique(fold):
        train = fold != k if folds > 1 else np.ones(n, dtype=bool)
        known = np.isfinite(revealed) & train[:, None]
        sums = np.zeros((disc.n_states, 3))
        counts = np.zeros((disc.n_states, 3))
        for a in range(3):
            np.add.at(sums[:, a], states[known[:, a]], revealed[known[:, a], a])
            np.add.at(counts[:, a], states[known[:, a]], 1.0)
        rows = fold == k
        s = states[rows]
        out[rows] = (sums[s] + prior_weight * base[rows]) / (counts[s] + prior_weight)
    return out


@dataclass(frozen=True)
class OPEReport:
    """Off-policy estimates of one policy on one log."""

    n: int
    logged_cost: float  # what the logging policy actually paid per order
    ips: Estimate
    snips: Estimate
    dr: Estimate
    match: float  # mean probability that the target takes the logged action
    automation_rate: float  # the target's expected share of automated decisions

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "logged_cost_per_order": self.logged_cost,
            "ips": self.ips.as_dict(),
            "snips": self.snips.as_dict(),
            "dr": self.dr.as_dict(),
            "match": self.match,
            "automation_rate": self.automation_rate,
        }


def target_probabilities(policy: Policy, data: LoggedData, rules: HardRules) -> FloatArray:
    """The policy's action probabilities on the logged observations, after the hard rules."""
    return rules.fold(policy.probabilities(data.obs), data.probability, data.amount)


def evaluate_offline(
    policy: Policy,
    data: LoggedData,
    rules: HardRules,
    *,
    prior: CostModel | None = None,
    discretizer: Discretizer | None = None,
) -> OPEReport:
    """IPS, SNIPS and DR estimates of ``policy``'s cost per order on ``data``."""
    if len(data) == 0:
        raise OPEError("the feedback log has no decisions with known outcomes yet")
    target = target_probabilities(policy, data, rules)
    q = fit_cost_table(data, discretizer, prior=prior)
    return OPEReport(
        n=len(data),
        logged_cost=float(data.cost.mean()),
        ips=ips(target, data),
        snips=snips(target, data)
        if _weights(target, data).sum() > 0
        else Estimate(float("nan"), float("inf"), 0.0),
        dr=doubly_robust(target, data, q),
        match=float(target[np.arange(len(data)), data.action].mean()),
        automation_rate=float(target[:, :2].sum(axis=1).mean()),
    )


__all__ = [
    "Estimate",
    "LoggedData",
    "OPEError",
    "OPEReport",
    "doubly_robust",
    "evaluate_offline",
    "fit_cost_table",
    "ips",
    "snips",
    "target_probabilities",
]
