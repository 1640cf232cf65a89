"""Off-policy evaluation on a synthetic log whose answer is known."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from gpt2_agent.rl.features import OBS_DIM, observe_arrays
from gpt2_agent.rl.ope import (
    LoggedData,
    OPEError,
    doubly_robust,
    evaluate_offline,
    fit_cost_table,
    ips,
    snips,
)
from gpt2_agent.rl.policies import FixedPolicy, ThresholdPolicy
from gpt2_agent.rl.safety import HardRules


def _synthetic(n: int, seed: int) -> tuple[LoggedData, np.ndarray]:
    """A stochastic logging policy over contexts whose expected costs are known exactly."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    amount = np.exp(rng.uniform(np.log(20), np.log(400), n))
    obs = observe_arrays(
        p,
        amount,
        new_account=np.zeros(n),
        address_mismatch=np.zeros(n),
        log2_ratio=np.zeros(n),
        velocity=np.ones(n),
    )
    mean = np.stack([(1 - p) * amount * 0.5, p * 30.0, np.full(n, 8.0)], axis=1)  # E[cost | x, a]
    mu = np.stack([0.2 + 0.5 * p, 0.5 - 0.4 * p, 0.3 - 0.1 * p], axis=1)  # logging probabilities
    action = np.array([rng.choice(3, p=row / row.sum()) for row in mu])
    mu = mu / mu.sum(axis=1, keepdims=True)
    cost = rng.gamma(4.0, mean[np.arange(n), action] / 4.0)  # noisy, mean as above
    data = LoggedData(
        obs=obs,
        probability=p,
        amount=amount,
        action=action.astype(np.int64),
        propensity=mu[np.arange(n), action],
        cost=cost,
    )
    return data, mean


NO_RULES = HardRules(Decimal("1000000"), unsure_min=1.0, unsure_max=0.0)  # nothing forbidden


@pytest.mark.parametrize("policy", [ThresholdPolicy(0.8, 0.3), FixedPolicy(0), FixedPolicy(2)], ids=str)
def test_ips_and_dr_recover_the_true_cost(policy) -> None:  # type: ignore[no-untyped-def]
    data, mean = _synthetic(20_000, seed=1)
    target = NO_RULES.fold(policy.probabilities(data.obs), data.probability, data.amount)
    truth = float((target * mean).sum(axis=1).mean())  # the target's expected cost on these contexts
    q = fit_cost_table(data)
    for estimate in (ips(target, data), snips(target, data), doubly_robust(target, data, q)):
        assert abs(estimate.value - truth) < 4 * estimate.stderr + 0.02 * truth, (estimate, truth)
    # The direct method's model takes most of the variance out.
    assert doubly_robust(target, data, q).stderr < ips(target, data).stderr


def test_dr_is_right_with_a_perfect_cost_model_and_few_samples() -> None:
    data, mean = _synthetic(300, seed=2)
    policy = ThresholdPolicy(0.7, 0.2)
    target = NO_RULES.fold(policy.probabilities(data.obs), data.probability, data.amount)
    truth = float((target * mean).sum(axis=1).mean())
    assert doubly_robust(target, data, mean).value == pytest.approx(truth, rel=0.15)


def test_report_says_how_much_the_log_supports_the_target() -> None:
    data, _ = _synthetic(2000, seed=3)
    report = evaluate_offline(FixedPolicy(2), data, NO_RULES)
    assert report.n == 2000 and 0 < report.match < 1 and report.automation_rate == 0
    assert report.dr.value == pytest.approx(8.0, rel=0.05)
    assert report.logged_cost == pytest.approx(float(data.cost.mean()))


def test_bad_logs_are_refused() -> None:
    z = np.zeros((2, OBS_DIM))
    ok = {
        "obs": z,
        "probability": np.zeros(2),
        "amount": np.zeros(2),
        "action": np.array([0, 2]),
        "cost": np.ones(2),
    }
    with pytest.raises(OPEError, match="propensities"):
        LoggedData(**ok, propensity=np.array([0.5, 0.0]))
    with pytest.raises(OPEError, match="finite cost"):
        LoggedData(**{**ok, "cost": np.array([1.0, np.nan])}, propensity=np.ones(2))
    empty = LoggedData(
        obs=np.zeros((0, OBS_DIM)),
        probability=np.zeros(0),
        amount=np.zeros(0),
        action=np.zeros(0, dtype=np.int64),
        propensity=np.zeros(0),
        cost=np.zeros(0),
    )
    with pytest.raises(OPEError, match="no decisions"):
        evaluate_offline(FixedPolicy(2), empty, NO_RULES)
