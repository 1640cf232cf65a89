"""The demo company's hidden review policy: the features its reviewers look at and how much each
one weighs. :mod:`gpt2_agent.demo.warehouse` documents the policy in words; this module is the
executable version, so the weights live in one place (:class:`SignalWeights`).

Everything here is vectorised over orders held as numpy arrays in chronological order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NEW_ACCOUNT_DAYS = 30
"""An account younger than this (in days, at order time) is "new"."""

REFERENCE_AMOUNT = 300.0
"""Stands in for the customer's average order amount (CNY) when they have no earlier order."""

VELOCITY_WINDOW_SECONDS = 24 * 3600
"""Order velocity counts the customer's orders in this window, up to and including the order."""


@dataclass(frozen=True)
class SignalWeights:
    """Log-odds weights of a reject decision (positive = more likely rejected).

    The terms are defined in :func:`risk_logit`; see the table in :mod:`gpt2_agent.demo.warehouse`.
    """

    bias: float = -4.5
    amount_ratio: float = 1.5
    new_account: float = 0.5
    address_mismatch: float = 0.5
    mismatch_on_new_account: float = 3.5
    velocity: float = 0.8
    forwarding: float = -1.0
    forwarding_on_large_amount: float = 6.5
    resale: float = 6.0
    urgency: float = -1.5
    urgency_on_new_account: float = 7.0


@dataclass(frozen=True)
class OrderFeatures:
    """Tabular features of every order, as of the moment it was placed."""

    prior_orders: IntArray  # the customer's earlier orders
    prior_mean: FloatArray  # their mean amount in CNY, REFERENCE_AMOUNT when there is none
    amount_ratio: FloatArray  # amount / prior_mean
    account_age_days: FloatArray
    new_account: BoolArray
    address_mismatch: BoolArray
    velocity_24h: IntArray  # orders in the last 24h including this one (>= 1)


def history_features(
    customer: IntArray, created_s: IntArray, amount_cents: IntArray
) -> tuple[IntArray, FloatArray, IntArray]:
    """Per order: (prior order count, prior mean amount in CNY, 24h velocity).

    Orders must be given in chronological order (ties keep their given order), which is the
    warehouse's ``orders.id`` order.
    """
    n = len(customer)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    order = np.lexsort((np.arange(n), customer))  # by customer, then chronological position
    cust_s = customer[order]
    t_s = created_s[order]
    amt_s = amount_cents[order].astype(np.float64)
    starts = np.r_[True, cust_s[1:] != cust_s[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    position = np.arange(n) - group_start  # index within the customer's history
    csum = np.cumsum(amt_s)
    before = np.where(position > 0, csum - amt_s - np.where(group_start > 0, csum[group_start - 1], 0.0), 0.0)
    prior_mean = np.where(position > 0, before / np.maximum(position, 1) / 100.0, REFERENCE_AMOUNT)
    # Velocity: orders of the same customer in (t - window, t]. Keys keep customers apart because
    # epoch seconds stay far below the 10^11 stride.
    keys = cust_s.astype(np.int64) * 10**11 + t_s
    # Times are non-decreasing within a customer, so keys are sorted and searchsorted is valid.
    lower = np.searchsorted(keys, keys - VELOCITY_WINDOW_SECONDS, side="right")
    velocity = np.arange(n) - lower + 1
    out_prior = np.empty(n, np.int64)
    out_mean = np.empty(n)
    out_vel = np.empty(n, np.int64)
    out_prior[order] = position
    out_mean[order] = prior_mean
    out_vel[order] = velocity
    return out_prior, out_mean, out_vel


def order_features(
    customer: IntArray,
    created_s: IntArray,
    amount_cents: IntArray,
    signup_s: IntArray,
    address_mismatch: BoolArray,
) -> OrderFeatures:
    """All tabular features of chronologically ordered orders (``signup_s`` per order)."""
    prior, prior_mean, velocity = history_features(customer, created_s, amount_cents)
    age_days = (created_s - signup_s) / 86400.0
    return OrderFeatures(
        prior_orders=prior,
        prior_mean=prior_mean,
        amount_ratio=amount_cents / 100.0 / prior_mean,
        account_age_days=age_days,
        new_account=age_days < NEW_ACCOUNT_DAYS,
        address_mismatch=address_mismatch.astype(bool),
        velocity_24h=velocity,
    )


def risk_logit(
    features: OrderFeatures,
    *,
    forwarding: BoolArray,
    resale: BoolArray,
    urgency: BoolArray,
    weights: SignalWeights | None = None,
) -> FloatArray:
    """Log-odds that a reviewer rejects each order (before label noise)."""
    w = weights or SignalWeights()
    ratio_term = np.clip(np.log2(np.maximum(features.amount_ratio, 1e-9)) - 1.0, 0.0, 3.0)
    large = (features.amount_ratio > 2.0).astype(np.float64)
    velocity_term = np.clip(features.velocity_24h - 2, 0, 3).astype(np.float64)
    new = features.new_account.astype(np.float64)
    mismatch = features.address_mismatch.astype(np.float64)
    fwd, urg = forwarding.astype(np.float64), urgency.astype(np.float64)
    return np.asarray(
        w.bias
        + w.amount_ratio * ratio_term
        + w.new_account * new
        + w.address_mismatch * mismatch
        + w.mismatch_on_new_account * mismatch * new
        + w.velocity * velocity_term
        + w.forwarding * fwd
        + w.forwarding_on_large_amount * fwd * large
        + w.resale * resale
        + w.urgency * urg
        + w.urgency_on_new_account * urg * new,
        dtype=np.float64,
    )


def sigmoid(x: FloatArray) -> FloatArray:
    """Numerically safe logistic function."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)), dtype=np.float64)
