"""The cost model: what each gate action costs once the order's truth is known.

Rewards of every learner are the negative costs, so "cheaper" and "better" are the same thing::

    auto_approve  0 if the order is good, else  wrong_approval_fixed + wrong_approval_rate * amount
    auto_reject   0 if the order is bad,  else  wrong_rejection_fixed + wrong_rejection_rate * amount
    escalate      review_cost, plus the cost of the reviewer's own decision when it is wrong

An approval that turns out fraudulent costs the chargeback (the amount) and its fee; a rejected
good order costs the lost sale. A reviewer's decision is costed like the gate's would be, so a
person who approves a fraud costs as much as a machine that does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gpt2_agent.config import Settings

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

COST_FIELDS = (
    "review_cost",
    "wrong_approval_fixed",
    "wrong_approval_rate",
    "wrong_rejection_fixed",
    "wrong_rejection_rate",
)


class CostModelError(ValueError):
    """A cost is negative, infinite or not a number; the message names the field."""


@dataclass(frozen=True)
class CostModel:
    """Costs of the gate's actions, in the order's currency.

    :param review_cost: one review by a person.
    :param wrong_approval_fixed: fee of a chargeback (an approved order that was fraudulent).
    :param wrong_approval_rate: share of the amount lost with it (1.0: all of it).
    :param wrong_rejection_fixed: goodwill lost by rejecting a good order.
    :param wrong_rejection_rate: share of the amount lost with it (the margin).
    """

    review_cost: float = 8.0
    wrong_approval_fixed: float = 15.0
    wrong_approval_rate: float = 1.0
    wrong_rejection_fixed: float = 5.0
    wrong_rejection_rate: float = 0.2

    def __post_init__(self) -> None:
        for name in COST_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CostModelError(f"cost model: {name} must be a number (got {value!r})")
            if not math.isfinite(value):
                raise CostModelError(f"cost model: {name} must be finite (got {value!r})")
            if value < 0:
                raise CostModelError(f"cost model: {name} must not be negative (got {value!r})")

    @classmethod
    def from_settings(cls, settings: Settings) -> CostModel:
        """The ``gate_*`` costs of the settings."""
        return cls(
            review_cost=settings.gate_review_cost,
            wrong_approval_fixed=settings.gate_wrong_approval_fixed,
            wrong_approval_rate=settings.gate_wrong_approval_rate,
            wrong_rejection_fixed=settings.gate_wrong_rejection_fixed,
            wrong_rejection_rate=settings.gate_wrong_rejection_rate,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CostModel:
        """From a mapping with the field names (unknown keys are refused, naming them)."""
        unknown = sorted(set(values) - set(COST_FIELDS))
        if unknown:
            raise CostModelError(f"cost model: unknown fields {unknown}; use {list(COST_FIELDS)}")
        return cls(**{k: float(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, float]:
        """Plain values, for artifacts and the CLI."""
        return {k: float(v) for k, v in asdict(self).items()}

    # --- per order --------------------------------------------------------------------------

    def wrong_approval(self, amount: float | FloatArray) -> Any:
        """What approving a fraudulent order of ``amount`` costs."""
        return self.wrong_approval_fixed + self.wrong_approval_rate * np.asarray(amount, dtype=np.float64)

    def wrong_rejection(self, amount: float | FloatArray) -> Any:
        """What rejecting a good order of ``amount`` costs."""
        return self.wrong_rejection_fixed + self.wrong_rejection_rate * np.asarray(amount, dtype=np.float64)

    def action_costs(
        self, amount: FloatArray, bad: BoolArray, reviewer_approves: BoolArray | None = None
    ) -> FloatArray:
        """``(n, 3)`` costs of auto_approve, auto_reject and escalate for each order.

        :param amount: order amounts.
        :param bad: whether each order is fraudulent (its chargeback label).
        :param reviewer_approves: what a person would decide; default: always right (``~bad``).
        """
        amount = np.asarray(amount, dtype=np.float64)
        bad = np.asarray(bad, dtype=bool)
        approves = ~bad if reviewer_approves is None else np.asarray(reviewer_approves, dtype=bool)
        approve_cost = np.where(bad, self.wrong_approval(amount), 0.0)
        reject_cost = np.where(bad, 0.0, self.wrong_rejection(amount))
        review = self.review_cost + np.where(approves, approve_cost, reject_cost)
        return np.stack([approve_cost, reject_cost, review], axis=1)

    def expected_costs(self, amount: FloatArray, p_good: FloatArray) -> FloatArray:
        """``(n, 3)`` expected costs when an order is good with probability ``p_good`` and the
        reviewer is always right: the prior a learner starts from before any outcome is seen."""
        amount = np.asarray(amount, dtype=np.float64)
        p = np.clip(np.asarray(p_good, dtype=np.float64), 0.0, 1.0)
        approve = (1.0 - p) * self.wrong_approval(amount)
        reject = p * self.wrong_rejection(amount)
        review = np.full_like(approve, self.review_cost)
        return np.stack([approve, reject, review], axis=1)


__all__ = ["COST_FIELDS", "CostModel", "CostModelError"]
