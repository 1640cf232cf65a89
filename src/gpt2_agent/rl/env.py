"""A Gymnasium environment of the order stream: one step is one gate decision.

Observation: the vector of :data:`~gpt2_agent.rl.features.OBS_FIELDS` (float32 in ``[0, 1]``).
Actions: ``Discrete(3)``: 0 ``auto_approve``, 1 ``auto_reject``, 2 ``escalate``.
Reward: minus the cost of the action actually taken (:class:`~gpt2_agent.rl.costs.CostModel`),
divided by ``reward_scale`` so networks see rewards of order one.

The hard rules (:class:`~gpt2_agent.rl.safety.HardRules`) are part of the environment, as they
are part of the live gate: a forbidden action is turned into ``escalate`` before it is costed,
whatever the agent asked for. ``info`` says what happened::

    cost        the cost of the action taken (unscaled)
    action      the action taken; requested: the agent's; overridden: the rules changed it
    automated   the order went through without a person
    revealed    {action: cost} for each action whose cost the outcome reveals: an escalation
                reveals all three (the reviewer's decision, later the chargeback),
                an approval reveals approve and reject (the chargeback says whether the order
                was bad), a rejection reveals only itself

Orders are independent of the agent's choices, so an episode is just ``episode_length``
consecutive orders. With ``sequential=True`` (the default) episodes walk through the stream in
time order and continue where the last one stopped, which is how "online from the start of the
stream" is measured; a reset with a seed starts again at the first order. With
``sequential=False`` each episode starts at a random order.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.features import APPROVE, AUTOMATED, ESCALATE, OBS_DIM, REJECT
from gpt2_agent.rl.safety import HardRules
from gpt2_agent.rl.stream import OrderStream

ObsType = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]


class OrderStreamEnv(gym.Env[ObsType, np.int64]):
    """Replays an :class:`OrderStream` under a cost model and hard rules.

    :param stream: the orders (scored once, when the stream was built).
    :param costs: what each action costs.
    :param rules: the hard rules; the environment applies them to every action.
    :param episode_length: orders per episode.
    :param sequential: walk through the stream in time order (else: random episode starts).
    :param reward_scale: rewards are ``-cost / reward_scale``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Gymnasium's class attribute)

    def __init__(
        self,
        stream: OrderStream,
        costs: CostModel,
        rules: HardRules,
        *,
        episode_length: int = 256,
        sequential: bool = True,
        reward_scale: float = 100.0,
    ) -> None:
        if len(stream) == 0:
            raise ValueError("the order stream is empty")
        if episode_length < 1:
            raise ValueError(f"episode_length must be at least 1 (got {episode_length})")
        if not reward_scale > 0:
            raise ValueError(f"reward_scale must be positive (got {reward_scale})")
        self.stream = stream
        self.cost_model = costs
        self.rules = rules
        self.episode_length = episode_length
        self.sequential = sequential
        self.reward_scale = float(reward_scale)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self._costs = stream.costs(costs)
        self._allowed = rules.allowed(stream.probability, stream.amount)
        self._obs = stream.obs.astype(np.float32)
        self._cursor = 0  # the next order of the stream
        self._steps = 0

    # --- Gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        super().reset(seed=seed)
        if not self.sequential:
            self._cursor = int(self.np_random.integers(len(self.stream)))
        elif seed is not None or (options or {}).get("restart") or self._cursor >= len(self.stream):
            self._cursor = 0
        self._steps = 0
        return self._obs[self._cursor].copy(), {"position": self._cursor}

    def step(self, action: Any) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        requested = int(action)
        if not self.action_space.contains(requested):
            raise ValueError(f"invalid action {action!r}; expected 0, 1 or 2")
        i = self._cursor
        taken = requested if self._allowed[i, requested] else ESCALATE
        cost = float(self._costs[i, taken])
        info = {
            "cost": cost,
            "action": taken,
            "requested": requested,
            "overridden": taken != requested,
            "automated": taken in AUTOMATED,
            "position": i,
            "revealed": self.revealed(i, taken),
        }
        self._cursor += 1
        self._steps += 1
        end_of_stream = self._cursor >= len(self.stream)
        truncated = end_of_stream or self._steps >= self.episode_length
        obs = self._obs[min(self._cursor, len(self.stream) - 1)].copy()
        if end_of_stream and not self.sequential:
            self._cursor = 0
        return obs, -cost / self.reward_scale, False, truncated, info

    # --- helpers -----------------------------------------------------------------------------------

    def revealed(self, i: int, taken: int) -> dict[int, float]:
        """``{action: cost}`` for each action whose cost order ``i``'s outcome reveals after ``taken``."""
        costs = self._costs[i]
        if taken == ESCALATE:
            # The reviewer's decision is the label; a chargeback corrects it when they approved.
            bad = bool(self.stream.bad[i]) if self.stream.reviewer_approves[i] else True
            amount = float(self.stream.amount[i])
            return {
                APPROVE: float(self.cost_model.wrong_approval(amount)) if bad else 0.0,
                REJECT: 0.0 if bad else float(self.cost_model.wrong_rejection(amount)),
                ESCALATE: float(costs[ESCALATE]),
            }
        if taken == REJECT:
            return {REJECT: float(costs[REJECT])}
        return {APPROVE: float(costs[APPROVE]), REJECT: float(costs[REJECT])}

    @property
    def position(self) -> int:
        """The index of the next order."""
        return self._cursor


__all__ = ["OrderStreamEnv"]
