"""The order-stream environment: Gymnasium's contract, hard rules inside, stream order."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.env import OrderStreamEnv
from gpt2_agent.rl.features import APPROVE, ESCALATE, OBS_DIM, REJECT
from gpt2_agent.rl.safety import HardRules
from gpt2_agent.rl.stream import OrderStream, StreamOrder, toy_orders, toy_scorer


@pytest.mark.parametrize("sequential", [True, False])
def test_check_env(train_stream: OrderStream, costs: CostModel, rules: HardRules, sequential: bool) -> None:
    check_env(OrderStreamEnv(train_stream, costs, rules, episode_length=64, sequential=sequential))


def test_rewards_are_negative_costs_and_the_rules_apply(
    train_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    env = OrderStreamEnv(train_stream, costs, rules, episode_length=len(train_stream), reward_scale=10.0)
    table = train_stream.costs(costs)
    env.reset(seed=0)
    for i in range(len(train_stream)):
        _, reward, terminated, truncated, info = env.step(APPROVE)  # an agent that approves everything
        p, amount = train_stream.probability[i], train_stream.amount[i]
        forbidden = amount > 500 or 0.4 <= p <= 0.6
        assert info["action"] == (ESCALATE if forbidden else APPROVE)
        assert info["overridden"] == forbidden
        assert reward == pytest.approx(-table[i, info["action"]] / 10.0)
        assert not terminated
    assert truncated


def test_episodes_walk_the_stream_in_time_order(costs: CostModel, rules: HardRules) -> None:
    stream = OrderStream.from_orders(toy_orders(10), toy_scorer())
    env = OrderStreamEnv(stream, costs, rules, episode_length=4)
    seen: list[int] = []
    obs, info = env.reset(seed=1)
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32
    for _ in range(4):
        done = False
        while not done:
            _, _, _, done, info = env.step(ESCALATE)
            seen.append(info["position"])
        env.reset()
    assert seen == [*range(10), 0, 1, 2, 3]  # continues after each episode, ends with the stream, wraps


def test_outcomes_reveal_what_they_can(costs: CostModel, rules: HardRules) -> None:
    orders = [
        StreamOrder("1", "order 1 risk=0.9000", 100.0, reviewer_approves=False, bad=True),
        StreamOrder("2", "order 2 risk=0.0100", 100.0, reviewer_approves=True, bad=False),
    ]
    env = OrderStreamEnv(OrderStream.from_orders(orders, toy_scorer()), costs, rules)
    env.reset(seed=0)
    _, _, _, _, info = env.step(ESCALATE)  # a reviewer's rejection says an approval would have cost 115
    assert info["revealed"] == {APPROVE: 115.0, REJECT: 0.0, ESCALATE: 8.0}
    _, _, _, _, info = env.step(REJECT)  # nobody learns more about a rejected order
    assert info["revealed"] == {REJECT: 25.0}


def test_bad_streams_and_actions_are_refused(
    train_stream: OrderStream, costs: CostModel, rules: HardRules
) -> None:
    with pytest.raises(ValueError, match="empty"):
        OrderStreamEnv(train_stream.slice(0, 0), costs, rules)
    env = OrderStreamEnv(train_stream, costs, rules)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(7)
    with pytest.raises(ValueError, match="probabilities between 0 and 1"):
        OrderStream.from_orders(toy_orders(3), lambda texts: [1.5] * len(texts))
