"""What a gate sees and says, and the observation vector every learned policy reads.

:class:`GateFeatures` and :class:`GateDecision` mirror the dataclasses of the order actions'
automation gate field for field (``rl`` does not import ``actions``), so a gate built here is a
drop-in ``AutomationGate``: it accepts their ``GateFeatures`` (read by attribute) and returns a
decision with the same fields.

The observation (:data:`OBS_FIELDS`, all in ``[0, 1]``) is built from the audit model's
probability, the amount and the order's tabular features (the ``features`` of the audit output,
named as in the audit data set: ``new_account``, ``address_mismatch``, ``log2_amount_ratio``,
``velocity_24h``); features an order does not have (an order typed in by hand) read as 0.
:data:`ENV_VERSION` names this layout and the action order: a policy trained on another layout
is refused at load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

GateAction = Literal["auto_approve", "auto_reject", "escalate"]
ACTIONS: tuple[GateAction, ...] = ("auto_approve", "auto_reject", "escalate")
APPROVE, REJECT, ESCALATE = 0, 1, 2
AUTOMATED = (APPROVE, REJECT)

ENV_VERSION = "order-stream/2"
"""Observation layout and action order; bump it whenever either changes."""

OBS_FIELDS: tuple[str, ...] = (
    "probability",  # the audit model's probability of approve
    "log_odds",  # its log-odds, clipped to [-8, 8] and mapped to [0, 1]: resolves 0.97 from 0.99
    "amount",  # log10(1 + amount) / 5, capped at 1 (100k)
    "new_account",  # 0 / 1
    "address_mismatch",  # 0 / 1
    "amount_ratio",  # log2(amount / the customer's usual amount), clipped to [0, 4], / 4
    "velocity",  # the customer's orders in the last 24h beyond the first, capped at 4, / 4
)
OBS_DIM = len(OBS_FIELDS)
AMOUNT_COLUMN = OBS_FIELDS.index("amount")
NEW_ACCOUNT_COLUMN = OBS_FIELDS.index("new_account")
MISMATCH_COLUMN = OBS_FIELDS.index("address_mismatch")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GateFeatures:
    """What a gate sees about one audited order (mirrors ``actions.gate.GateFeatures``)."""

    probability: float
    amount: Decimal
    currency: str = "CNY"
    recommendation: str | None = None
    order_no: str | None = None
    workflow: str | None = None
    model_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer (mirrors ``actions.gate.GateDecision``)."""

    action: GateAction
    reason: str
    policy_version: str
    propensity: float = 1.0


class FeaturesLike(Protocol):
    """Anything with the attributes of :class:`GateFeatures` (the actions' own class included)."""

    @property
    def probability(self) -> float: ...

    @property
    def amount(self) -> Decimal: ...

    @property
    def extra(self) -> dict[str, Any]: ...


def _number(value: Any, default: float = 0.0) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


def observe(probability: float, amount: float, extra: Mapping[str, Any] | None = None) -> FloatArray:
    """The observation vector of one order."""
    extra = extra or {}
    ratio = extra.get("log2_amount_ratio")
    if ratio is None and extra.get("amount_ratio") is not None:
        ratio = math.log2(max(_number(extra.get("amount_ratio"), 1.0), 1e-9))
    return observe_arrays(
        np.array([_number(probability, 0.5)]),
        np.array([_number(amount)]),
        new_account=np.array([_number(extra.get("new_account"))]),
        address_mismatch=np.array([_number(extra.get("address_mismatch"))]),
        log2_ratio=np.array([_number(ratio)]),
        velocity=np.array([_number(extra.get("velocity_24h"), 1.0)]),
    )[0]


def observe_features(features: FeaturesLike) -> FloatArray:
    """The observation of a gate's input (``GateFeatures`` of either package)."""
    return observe(features.probability, float(features.amount), features.extra)


def observe_arrays(
    probability: FloatArray,
    amount: FloatArray,
    *,
    new_account: FloatArray,
    address_mismatch: FloatArray,
    log2_ratio: FloatArray,
    velocity: FloatArray,
) -> FloatArray:
    """``(n, OBS_DIM)`` observations of many orders at once."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    eps = 1e-6
    log_odds = np.log((p + eps) / (1.0 - p + eps))
    obs = np.stack(
        [
            p,
            (np.clip(log_odds, -8.0, 8.0) + 8.0) / 16.0,
            np.clip(np.log10(1.0 + np.maximum(amount, 0.0)) / 5.0, 0.0, 1.0),
            (np.asarray(new_account) > 0.5).astype(np.float64),
            (np.asarray(address_mismatch) > 0.5).astype(np.float64),
            np.clip(log2_ratio, 0.0, 4.0) / 4.0,
            np.clip(np.asarray(velocity) - 1.0, 0.0, 4.0) / 4.0,
        ],
        axis=1,
    )
    return np.asarray(obs, dtype=np.float64)


def amount_of(obs: FloatArray) -> FloatArray:
    """The amounts back from observations (inverse of the amount column; exact below 100k)."""
    return np.asarray(10.0 ** (np.asarray(obs)[..., AMOUNT_COLUMN] * 5.0) - 1.0, dtype=np.float64)


__all__ = [
    "ACTIONS",
    "APPROVE",
    "AUTOMATED",
    "ENV_VERSION",
    "ESCALATE",
    "OBS_DIM",
    "OBS_FIELDS",
    "REJECT",
    "FeaturesLike",
    "GateAction",
    "GateDecision",
    "GateFeatures",
    "amount_of",
    "observe",
    "observe_arrays",
    "observe_features",
]
