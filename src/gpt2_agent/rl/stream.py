"""An order stream: orders in time order with the audit model's scores and what became of them.

A stream is what the environment replays and what policies are compared on. Each order has the
audit model's probability of approve (scored once, when the stream is built, through a scorer
callable: the serving runtime in production, a fake in tests), its amount, the observation a
policy sees, the reviewers' decision, and its chargeback label (``bad``: the order was
fraudulent, which an approval pays for later).

Labels are deterministic. :func:`hashed_uniform` turns order keys into uniform numbers, so a
label drawn from a risk (:func:`chargeback_labels`) or a drift (:meth:`OrderStream.with_drift`)
is the same on every run and independent of the order in which orders are read.

:func:`toy_orders` and :func:`toy_scorer` make a small synthetic stream for tests and examples (a
scorer that reads the risk written into each text), in the spirit of SB3's toy environments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.features import OBS_DIM, observe_arrays

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

Scorer = Callable[[Sequence[str]], Sequence[float]]
"""Texts in, the audit model's probability of approve per text out (same order)."""


@dataclass(frozen=True)
class StreamOrder:
    """One order as the stream builder needs it.

    :param key: the order number.
    :param text: the serialized order the audit model reads.
    :param amount: the amount in the order's currency.
    :param features: tabular features named as in the audit data set (``new_account``,
        ``address_mismatch``, ``log2_amount_ratio``, ``velocity_24h``...).
    :param reviewer_approves: what the reviewers decided (or would decide).
    :param bad: the chargeback label; None: take the reviewers' rejection as the truth.
    """

    key: str
    text: str
    amount: float
    features: Mapping[str, float] = field(default_factory=dict)
    reviewer_approves: bool = True
    bad: bool | None = None


@dataclass(frozen=True)
class OrderStream:
    """Orders in time order, as parallel arrays (see the module docstring)."""

    keys: tuple[str, ...]
    probability: FloatArray
    amount: FloatArray
    obs: FloatArray  # (n, OBS_DIM)
    bad: BoolArray
    reviewer_approves: BoolArray
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.keys)
        for name in ("probability", "amount", "bad", "reviewer_approves"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"stream {name} has {len(getattr(self, name))} entries for {n} orders")
        if self.obs.shape != (n, OBS_DIM):
            raise ValueError(f"stream observations have shape {self.obs.shape}, expected {(n, OBS_DIM)}")

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_orders(
        cls, orders: Sequence[StreamOrder], scorer: Scorer, *, batch_size: int = 512, source: str = ""
    ) -> OrderStream:
        """Score every order once (in batches of ``batch_size``) and build the stream."""
        texts = [o.text for o in orders]
        scores: list[float] = []
        for start in range(0, len(texts), batch_size):
            chunk = list(scorer(texts[start : start + batch_size]))
            if len(chunk) != len(texts[start : start + batch_size]):
                raise ValueError(f"the scorer returned {len(chunk)} scores for {batch_size} texts")
            scores.extend(float(s) for s in chunk)
        probability = np.asarray(scores, dtype=np.float64)
        if probability.size and (
            not np.all(np.isfinite(probability)) or probability.min() < 0 or probability.max() > 1
        ):
            raise ValueError("the scorer must return probabilities between 0 and 1")
        return cls.from_arrays(
            keys=[o.key for o in orders],
            probability=probability,
            amount=np.asarray([o.amount for o in orders], dtype=np.float64),
            features=[o.features for o in orders],
            reviewer_approves=np.asarray([o.reviewer_approves for o in orders], dtype=bool),
            bad=[o.bad for o in orders],
            source=source,
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        keys: Sequence[str],
        probability: FloatArray,
        amount: FloatArray,
        features: Sequence[Mapping[str, float]],
        reviewer_approves: BoolArray,
        bad: Sequence[bool | None] | BoolArray | None = None,
        source: str = "",
    ) -> OrderStream:
        """A stream from already scored orders; ``bad`` defaults to the reviewers' rejections."""
        approves = np.asarray(reviewer_approves, dtype=bool)
        if bad is None:
            labels = ~approves
        else:
            labels = np.asarray(
                [(not a) if b is None else bool(b) for b, a in zip(bad, approves, strict=True)]
            )

        def column(name: str, default: float) -> FloatArray:
            return np.asarray([float(f.get(name, default)) for f in features], dtype=np.float64)

        obs = observe_arrays(
            np.asarray(probability, dtype=np.float64),
            np.asarray(amount, dtype=np.float64),
            new_account=column("new_account", 0.0),
            address_mismatch=column("address_mismatch", 0.0),
            log2_ratio=column("log2_amount_ratio", 0.0),
            velocity=column("velocity_24h", 1.0),
        )
        return cls(
            keys=tuple(str(k) for k in keys),
            probability=np.asarray(probability, dtype=np.float64),
            amount=np.asarray(amount, dtype=np.float64),
            obs=obs.reshape(len(keys), OBS_DIM),
            bad=labels.astype(bool).reshape(len(keys)),
            reviewer_approves=approves,
            source=source,
        )

    # --- views ---------------------------------------------------------------------------------

    def slice(self, start: int, stop: int | None = None) -> OrderStream:
        """Orders ``start:stop`` as a stream of their own."""
        s = np.s_[start:stop]
        return replace(
            self,
            keys=self.keys[s],
            probability=self.probability[s],
            amount=self.amount[s],
            obs=self.obs[s],
            bad=self.bad[s],
            reviewer_approves=self.reviewer_approves[s],
        )

    def costs(self, model: CostModel) -> FloatArray:
        """``(n, 3)`` cost of each action on each order under ``model``."""
        return model.action_costs(self.amount, self.bad, self.reviewer_approves)

    def fingerprint(self) -> str:
        """SHA-256 over keys, scores and labels: the identity of the stream."""
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.keys).encode())
        for array in (self.probability, self.amount, self.bad, self.reviewer_approves):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def with_drift(
        self, start: int, affected: BoolArray, bad_rate: float, *, salt: str = "drift"
    ) -> OrderStream:
        """A new fraud pattern from order ``start`` on: each ``affected`` order is fraudulent with
        probability ``bad_rate`` (deterministic by key). The audit model's scores do not change
        (it has not seen the pattern); the reviewers do see it and reject those orders."""
        if not 0.0 <= bad_rate <= 1.0:
            raise ValueError(f"bad_rate must be between 0 and 1 (got {bad_rate})")
        affected = np.asarray(affected, dtype=bool)
        if affected.shape != self.bad.shape:
            raise ValueError(f"affected has shape {affected.shape}, expected {self.bad.shape}")
        after = np.arange(len(self)) >= start
        new_bad = after & affected & (hashed_uniform(self.keys, salt) < bad_rate)
        return replace(
            self,
            bad=self.bad | new_bad,
            reviewer_approves=self.reviewer_approves & ~new_bad,
            source=f"{self.source} + drift@{start}",
        )


def hashed_uniform(keys: Sequence[str], salt: str) -> FloatArray:
    """A uniform number in ``[0, 1)`` per key, the same on every run (SHA-256 of salt and key)."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        h = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
        out[i] = int.from_bytes(h[:8], "big") / 2.0**64
    return out


def chargeback_labels(keys: Sequence[str], risk: FloatArray, *, salt: str = "chargeback") -> BoolArray:
    """A deterministic chargeback label per order, drawn with probability ``risk``."""
    risk = np.asarray(risk, dtype=np.float64)
    if risk.shape != (len(keys),):
        raise ValueError(f"risk has shape {risk.shape}, expected ({len(keys)},)")
    return np.asarray(hashed_uniform(keys, salt) < risk, dtype=bool)


# --- a toy stream for tests and examples ---------------------------------------------------------

_TOY_RISK = re.compile(r"risk=([0-9.]+)")


def toy_orders(n: int, *, seed: int = 0, reviewer_noise: float = 0.0) -> list[StreamOrder]:
    """``n`` synthetic orders: the text carries the true risk, amounts are log-normal around 250,
    new accounts and address mismatches raise the risk, and ``bad`` is drawn from it."""
    rng = np.random.default_rng(seed)
    amount = np.round(np.exp(rng.normal(np.log(250.0), 0.8, n)), 2)
    new = rng.random(n) < 0.3
    mismatch = rng.random(n) < 0.2
    logit = -3.5 + 2.0 * new + 1.5 * mismatch + 0.6 * np.log(amount / 250.0) + rng.normal(0, 2.5, n)
    risk = 1.0 / (1.0 + np.exp(-logit))
    bad = rng.random(n) < risk
    flip = rng.random(n) < reviewer_noise
    out = []
    for i in range(n):
        features = {
            "new_account": float(new[i]),
            "address_mismatch": float(mismatch[i]),
            "log2_amount_ratio": float(np.log2(amount[i] / 250.0)),
            "velocity_24h": 1.0,
        }
        out.append(
            StreamOrder(
                key=str(10000 + i),
                text=f"order {10000 + i} amount={amount[i]:.2f} risk={risk[i]:.4f}",
                amount=float(amount[i]),
                features=features,
                reviewer_approves=bool(~bad[i] ^ flip[i]),
                bad=bool(bad[i]),
            )
        )
    return out


def toy_scorer(noise: float = 0.0, seed: int = 0) -> Scorer:
    """A fake audit model: reads the risk from the toy text and answers ``1 - risk`` (blurred by
    ``noise`` on the logit scale, deterministically per text)."""

    def score(texts: Sequence[str]) -> list[float]:
        out = []
        for text in texts:
            found = _TOY_RISK.search(text)
            if found is None:
                raise ValueError(f"not a toy order text: {text!r}")
            risk = min(max(float(found.group(1)), 1e-4), 1 - 1e-4)
            logit = np.log((1 - risk) / risk)
            if noise:
                logit += noise * (2.0 * hashed_uniform([text], f"toy{seed}")[0] - 1.0) * 2.0
            out.append(float(1.0 / (1.0 + np.exp(-logit))))
        return out

    return score


def toy_stream(n: int, *, seed: int = 0, noise: float = 0.5) -> OrderStream:
    """:func:`toy_orders` scored by :func:`toy_scorer`."""
    return OrderStream.from_orders(
        toy_orders(n, seed=seed), toy_scorer(noise, seed), source=f"toy:{n}:{seed}"
    )


def describe(stream: OrderStream) -> dict[str, Any]:
    """A few numbers about a stream (for logs and reports)."""
    return {
        "orders": len(stream),
        "bad_rate": float(stream.bad.mean()) if len(stream) else 0.0,
        "reviewer_approve_rate": float(stream.reviewer_approves.mean()) if len(stream) else 0.0,
        "mean_amount": float(stream.amount.mean()) if len(stream) else 0.0,
        "source": stream.source,
    }


__all__ = [
    "OrderStream",
    "Scorer",
    "StreamOrder",
    "chargeback_labels",
    "describe",
    "hashed_uniform",
    "toy_orders",
    "toy_scorer",
    "toy_stream",
]
