"""Hard rules that no policy can override: they are applied after the policy has chosen.

1. Never auto-approve an order above the amount limit (``gate_auto_approve_max_amount``).
2. Escalate whenever the audit model is unsure: its probability of approve lies in
   ``[gate_unsure_min_probability, gate_unsure_max_probability]``.

A forbidden choice becomes ``escalate`` (a person decides), never the other automatic action.
For off-policy evaluation and logged propensities the same rule is applied to a policy's action
probabilities with :meth:`HardRules.fold`: the mass of forbidden actions moves to ``escalate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from gpt2_agent.config import Settings
from gpt2_agent.rl.features import APPROVE, ESCALATE, REJECT

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class HardRules:
    """The amount limit of auto-approval and the band of probabilities where the model is unsure.

    :param max_amount: largest amount approved without a person.
    :param unsure_min: lowest probability of the unsure band (inclusive).
    :param unsure_max: highest probability of the unsure band (inclusive); below ``unsure_min``
        disables the band.
    """

    max_amount: Decimal
    unsure_min: float = 0.4
    unsure_max: float = 0.6

    def __post_init__(self) -> None:
        if not self.max_amount.is_finite() or self.max_amount < 0:
            raise ValueError(f"max_amount must be a non-negative amount (got {self.max_amount})")
        for name in ("unsure_min", "unsure_max"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1 (got {value})")

    @classmethod
    def from_settings(cls, settings: Settings) -> HardRules:
        """The limit and band of the settings."""
        return cls(
            max_amount=Decimal(settings.gate_auto_approve_max_amount),
            unsure_min=settings.gate_unsure_min_probability,
            unsure_max=settings.gate_unsure_max_probability,
        )

    def as_dict(self) -> dict[str, str | float]:
        """Plain values, for artifacts."""
        return {
            "max_amount": str(self.max_amount),
            "unsure_min": self.unsure_min,
            "unsure_max": self.unsure_max,
        }

    def unsure(self, probability: FloatArray | float) -> BoolArray:
        """Whether each probability lies in the unsure band."""
        p = np.asarray(probability, dtype=np.float64)
        return np.asarray((p >= self.unsure_min) & (p <= self.unsure_max), dtype=bool)

    def allowed(self, probability: FloatArray, amount: FloatArray) -> BoolArray:
        """``(n, 3)`` which actions each order may take (escalate always may)."""
        p = np.asarray(probability, dtype=np.float64)
        unsure = self.unsure(p)
        over = np.asarray(amount, dtype=np.float64) > float(self.max_amount)
        mask = np.ones((len(p), 3), dtype=bool)
        mask[:, APPROVE] = ~unsure & ~over
        mask[:, REJECT] = ~unsure
        return mask

    def fold(self, probs: FloatArray, probability: FloatArray, amount: FloatArray) -> FloatArray:
        """Action probabilities after the rules: forbidden mass moves to escalate."""
        probs = np.array(probs, dtype=np.float64, copy=True)
        mask = self.allowed(probability, amount)
        moved = np.where(mask, 0.0, probs).sum(axis=1)
        probs = np.where(mask, probs, 0.0)
        probs[:, ESCALATE] += moved
        return probs

    def enforce(self, action: int, probability: float, amount: Decimal) -> tuple[int, str | None]:
        """The action after the rules, and why it changed (None: unchanged).

        The amount is compared as a :class:`~decimal.Decimal`, so a limit of 500.00 admits 500.00.
        """
        if action == ESCALATE:
            return action, None
        if self.unsure_min <= probability <= self.unsure_max:
            return ESCALATE, (
                f"the model is unsure (probability {probability:.3f} is within "
                f"[{self.unsure_min:g}, {self.unsure_max:g}])"
            )
        if action == APPROVE and Decimal(amount) > self.max_amount:
            return ESCALATE, f"amount {amount} is above the auto-approve limit {self.max_amount}"
        return action, None


__all__ = ["HardRules"]
