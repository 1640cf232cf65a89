"""Each learner, trained for a tiny budget on a small stream, beats always-escalate on new orders."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.env import OrderStreamEnv
from gpt2_agent.rl.features import ESCALATE
from gpt2_agent.rl.online import evaluate, hindsight_thresholds, run_sb3, run_tabular
from gpt2_agent.rl.policies import Discretizer, FixedPolicy, Policy, ThresholdPolicy
from gpt2_agent.rl.safety import HardRules
from gpt2_agent.rl.sb3 import export, make_model
from gpt2_agent.rl.stream import OrderStream
from gpt2_agent.rl.tabular import TabularConfig, TabularLearner

TABULAR = {
    "q_learning": TabularConfig(method="q_learning"),
    "sarsa": TabularConfig(method="sarsa"),
    "sarsa_discounted": TabularConfig(method="sarsa", gamma=0.5),
    "q_learning_discounted": TabularConfig(method="q_learning", gamma=0.5),
}


def _cost(policy: Policy, stream: OrderStream, costs: CostModel, rules: HardRules) -> float:
    return evaluate(policy, stream, costs, rules).cost_per_order


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_tabular_learners_beat_always_escalate(
    name: str, train_stream: OrderStream, test_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    # No cost-model prior: everything the table knows it learned from these 1,500 orders (a
    # coarse table: probability x amount bins only, so each entry sees enough of them).
    coarse = Discretizer(new_account=False, address_mismatch=False)
    learner = TabularLearner(coarse, TABULAR[name], prior=None)
    run = run_tabular(learner, train_stream, costs, rules, seed=0)
    assert learner.updates == len(train_stream) and len(run.costs) == len(train_stream)
    learned = _cost(learner.greedy_policy(), test_stream, costs, rules)
    escalate = _cost(FixedPolicy(ESCALATE), test_stream, costs, rules)
    assert learned < 0.9 * escalate, (learned, escalate)


@pytest.mark.parametrize("algo", ["dqn", "a2c", "ppo"])
def test_sb3_learners_beat_always_escalate(
    algo: str, train_stream: OrderStream, test_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    # As they run live: warm-started from the cost model, then trained on 1,500 orders.
    run, model = run_sb3(algo, train_stream, costs, rules, seed=0)
    assert len(run.costs) == len(train_stream)
    learned = _cost(export(model), test_stream, costs, rules)
    escalate = _cost(FixedPolicy(ESCALATE), test_stream, costs, rules)
    assert learned < 0.9 * escalate, (learned, escalate)
    assert run.cost_per_order < escalate  # it paid less than escalating, while learning


def test_dqn_learns_from_the_stream_alone(
    train_stream: OrderStream, test_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    _, model = run_sb3("dqn", train_stream, costs, rules, seed=0, prior=False, learning_rate=1e-3)
    learned = _cost(export(model), test_stream, costs, rules)
    assert learned < _cost(FixedPolicy(ESCALATE), test_stream, costs, rules)


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_exported_network_acts_like_the_sb3_model(
    algo: str, train_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    model = make_model(algo, OrderStreamEnv(train_stream, costs, rules), seed=3)
    policy = export(model)
    obs = train_stream.obs[:200].astype(np.float32)
    theirs, _ = model.predict(obs, deterministic=True)
    mine = policy.probabilities(obs).argmax(axis=1) if algo == "dqn" else policy.scores(obs).argmax(axis=1)
    np.testing.assert_array_equal(mine, theirs)


def test_the_warm_start_starts_where_the_cost_model_points(
    train_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    _, model = run_sb3("dqn", train_stream.slice(0, 150), costs, rules, seed=0, learning_starts=10_000)
    hindsight, _ = hindsight_thresholds(train_stream, costs, rules)
    warm = _cost(export(model), train_stream, costs, rules)
    assert warm < _cost(FixedPolicy(ESCALATE), train_stream, costs, rules)
    assert warm < 1.25 * _cost(hindsight, train_stream, costs, rules)


def test_hindsight_thresholds_are_the_best_pair(
    train_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    best, total = hindsight_thresholds(train_stream, costs, rules)
    assert evaluate(best, train_stream, costs, rules).total == pytest.approx(total)
    grid = np.linspace(0.0, 1.0, 41)
    for reject_max in grid:
        for approve_min in grid[grid > reject_max]:
            other = evaluate(
                ThresholdPolicy(float(approve_min), float(reject_max)), train_stream, costs, rules
            )
            assert other.total >= total - 1e-6


def test_dqn_learns_each_outcome_only_after_the_delay(
    train_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    stream = train_stream.slice(0, 300)
    run, model = run_sb3("dqn", stream, costs, rules, seed=0, delay=120)
    assert len(run.costs) == len(stream)  # it decided every order, the first 120 without outcomes
    buffer = model.replay_buffer
    assert buffer.size() == len(stream) - 120 and len(buffer.pending) == 120
    # Every stored reward is what the environment charged for that order, in order, capped.
    cap = float(costs.wrong_approval(float(rules.max_amount))) + costs.review_cost
    stored = -buffer.rewards[: buffer.size(), 0] * buffer.reward_scale
    np.testing.assert_allclose(stored, np.minimum(run.costs[: buffer.size()], cap), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        buffer.observations[: buffer.size(), 0], stream.obs[: buffer.size()], atol=1e-6
    )


def test_dqn_counterfactual_outcomes_are_the_costs_of_asking(
    train_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    stream = train_stream.slice(0, 200)
    _, model = run_sb3("dqn", stream, costs, rules, seed=0, counterfactual=True, learning_starts=10_000)
    buffer = model.replay_buffer
    n = buffer.size()
    assert n > len(stream)  # escalations and approvals reveal other actions' costs too
    # Rows are matched back to their orders by observation; a row is the environment's cost of
    # asking for that action (an action the rules forbid costs an escalation), capped. Only where
    # a reviewer's rejection (taken as the truth) was wrong can a revealed cost differ.
    cap = float(costs.wrong_approval(float(rules.max_amount))) + costs.review_cost
    index = {stream.obs[i].astype(np.float32).tobytes(): i for i in range(len(stream))}
    table = stream.costs(costs)
    allowed = rules.allowed(stream.probability, stream.amount)
    checked = 0
    for obs, action, reward in zip(
        buffer.observations[:n, 0], buffer.actions[:n, 0, 0], buffer.rewards[:n, 0], strict=True
    ):
        i, a = index[obs.tobytes()], int(action)
        if not stream.reviewer_approves[i] and not stream.bad[i]:
            continue
        expected = table[i, a] if allowed[i, a] else table[i, ESCALATE]
        assert -reward * buffer.reward_scale == pytest.approx(min(expected, cap), abs=1e-3)
        checked += 1
    assert checked > 0.9 * n
