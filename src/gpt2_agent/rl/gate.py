"""The learned automation gate: the production ``gate-policy`` from the registry, hot-reloaded.

:func:`load_gate` is what the composition root calls::

    gate = load_gate(settings, registry, fallback=lambda wf: ThresholdGate.from_settings(settings, wf))
    register_order_actions(engine.handlers, settings, db, runtime, gate=gate)

:class:`LearnedGate` implements the order actions' ``AutomationGate`` protocol
(``decide(features) -> GateDecision``). On each decision it checks, at most every
``gate_policy_reload_seconds``, whether the registry's production version of
``gate_policy_model`` moved, and loads the new one (a policy for another environment version is
refused, logged, and the previous policy keeps serving). While no policy is in production it
asks ``fallback`` (the threshold gate of the workflow).

Every decision: the policy's action probabilities, exploration kept within
``[gate_explore_min, gate_explore_max]`` (exploring means escalating), an action drawn from them,
then the hard rules (:class:`~gpt2_agent.rl.safety.HardRules`); the logged propensity is the
probability of the final action under all of that, which is what off-policy evaluation needs.

With ``online=True`` a tabular policy also keeps learning in this process from the feedback log
(:class:`~gpt2_agent.rl.feedback_log.FeedbackLog`): outcomes that arrived since the last check
update its table. Those updates live in memory; ``gpt2-agent rl train --from-log`` and
``rl promote`` make them a registered, evaluated version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from gpt2_agent.config import Settings
from gpt2_agent.rl.artifact import PolicyArtifactError, load_policy
from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.features import (
    ACTIONS,
    APPROVE,
    ESCALATE,
    REJECT,
    FeaturesLike,
    GateDecision,
    observe_features,
)
from gpt2_agent.rl.policies import NetworkPolicy, Policy, TabularPolicy, sample_actions
from gpt2_agent.rl.safety import HardRules

log = logging.getLogger(__name__)

PRODUCTION = "production"


class GateLike(Protocol):
    """The ``AutomationGate`` protocol of the order actions."""

    def decide(self, features: Any) -> Any:
        """Choose auto_approve, auto_reject or escalate for one order."""
        ...


class RegistryLike(Protocol):
    """What the gate needs of the model registry (``gpt2_agent.registry.Registry``)."""

    def generation(self, name: str) -> int: ...

    def alias_version(self, name: str, alias: str) -> int | None: ...

    def resolve(self, ref: str, selector: str | int | None = None) -> Any: ...


Fallback = GateLike | Callable[[str | None], GateLike] | None


@dataclass
class _Loaded:
    version: int
    policy: Policy
    info: dict[str, Any]
    learner: Any = None  # the online TabularLearner, when learning in process

    @property
    def name(self) -> str:
        return f"gate-policy:{self.version}"


class ThresholdFallback:
    """The settings' thresholds (per workflow), for when neither a policy nor a fallback is given.

    The same rule as the order actions' ``ThresholdGate``: approve at ``probability >=
    gate_auto_approve_min_probability`` within the amount limit, reject at ``<=
    gate_auto_reject_max_probability``, escalate otherwise.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def decide(self, features: FeaturesLike) -> GateDecision:
        workflow = getattr(features, "workflow", None)
        values: dict[str, Any] = {
            "auto_approve_min_probability": self.settings.gate_auto_approve_min_probability,
            "auto_reject_max_probability": self.settings.gate_auto_reject_max_probability,
            "auto_approve_max_amount": self.settings.gate_auto_approve_max_amount,
        }
        values.update(self.settings.gate_workflow_overrides.get(workflow or "", {}))
        approve_min = float(values["auto_approve_min_probability"])
        reject_max = float(values["auto_reject_max_probability"])
        limit = Decimal(values["auto_approve_max_amount"])
        p = features.probability
        version = f"thresholds-{approve_min:g}-{reject_max:g}-{limit}"
        if p >= approve_min and Decimal(features.amount) <= limit:
            return GateDecision("auto_approve", f"probability {p:.3f} >= {approve_min:g}", version)
        if p <= reject_max:
            return GateDecision("auto_reject", f"probability {p:.3f} <= {reject_max:g}", version)
        return GateDecision("escalate", f"probability {p:.3f} or amount needs a person", version)


class LearnedGate:
    """Serves the production gate policy (see the module docstring). Thread-safe.

    :param settings: policy model name, exploration bounds, reload interval, hard rules.
    :param registry: where the policy versions and the production alias live.
    :param fallback: the gate used while no policy is in production: a gate, or a function of
        the workflow name returning one (default: :class:`ThresholdFallback`).
    :param feedback: a :class:`~gpt2_agent.rl.feedback_log.FeedbackLog` to learn from online
        (tabular policies only); None: no online learning.
    :param seed: seeds the exploration draws (tests).
    """

    def __init__(
        self,
        settings: Settings,
        registry: RegistryLike,
        *,
        fallback: Fallback = None,
        feedback: Any = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.model = settings.gate_policy_model
        self.rules = HardRules.from_settings(settings)
        self.fallback = fallback
        self.feedback = feedback
        self.reload_seconds = settings.gate_policy_reload_seconds
        self._default_fallback = ThresholdFallback(settings)
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._generation = -1
        self._checked_at = -float("inf")
        self._failed_version: int | None = None
        self._learned: set[int] = set()
        self._floor = 0

    # --- the protocol ----------------------------------------------------------------------------

    def decide(self, features: FeaturesLike) -> GateDecision:
        """Choose an action for one audited order."""
        loaded = self.refresh()
        if loaded is None:
            return self._fallback_decision(features)
        obs = observe_features(features)[None, :]
        p = float(features.probability)
        amount = Decimal(features.amount)
        with self._lock:
            raw = loaded.policy.probabilities(obs)
            drawn = int(sample_actions(raw, self._rng)[0])
        folded = self.rules.fold(raw, np.array([p]), np.array([float(amount)]))[0]
        action, rule = self.rules.enforce(drawn, p, amount)
        greedy_action = int(np.argmax(raw[0]))
        why = self._why(loaded, obs, greedy_action, drawn)
        if rule is not None:
            why = f"{rule} (policy wanted {ACTIONS[drawn]}: {why})"
        return GateDecision(ACTIONS[action], why, loaded.name, float(folded[action]))

    # --- loading ---------------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> _Loaded | None:
        """Reload the production policy if the registry changed (at most every reload interval),
        and learn from new outcomes when online. Returns what is being served."""
        now = self._clock()
        if not force and now - self._checked_at < self.reload_seconds:
            return self._loaded
        self._checked_at = now
        try:
            generation = self.registry.generation(self.model)
            if generation != self._generation:
                self._generation = generation
                version = self.registry.alias_version(self.model, PRODUCTION)
                if version is None:
                    if self._loaded is not None:
                        log.info(
                            "gate policy %s has no production version any more; thresholds decide", self.model
                        )
                    self._loaded = None
                elif self._loaded is None or self._loaded.version != version:
                    self._load(version)
        except Exception:  # the registry is unreachable or has no tables yet: keep serving
            log.warning("could not check the registry for %s", self.model, exc_info=True)
        if self._loaded is not None and self.feedback is not None:
            self._learn_online(self._loaded)
        return self._loaded

    def _load(self, version: int) -> None:
        if version == self._failed_version:
            return
        try:
            info = self.registry.resolve(self.model, version)
            policy, meta = load_policy(info.path)
        except (PolicyArtifactError, OSError) as exc:
            self._failed_version = version
            log.error("gate policy %s:%s refused: %s; keeping the previous policy", self.model, version, exc)
            return
        policy = self._bounded(policy)
        learner = None
        if self.feedback is not None and isinstance(policy, TabularPolicy):
            from gpt2_agent.rl.tabular import TabularConfig, TabularLearner

            learner = TabularLearner(
                policy.discretizer,
                TabularConfig(epsilon_min=policy.epsilon_min, epsilon_max=policy.epsilon_max),
            )
            learner.policy = policy
        with self._lock:
            self._loaded = _Loaded(version, policy, meta, learner)
            self._learned.clear()
            self._floor = 0
        log.info("gate now serves %s:%s (%s)", self.model, version, meta.get("kind"))

    def _bounded(self, policy: Policy) -> Policy:
        """The policy with exploration kept within the settings' bounds (exploring = escalating)."""
        low, high = (
            self.settings.gate_explore_min,
            max(self.settings.gate_explore_max, self.settings.gate_explore_min),
        )
        if isinstance(policy, TabularPolicy):
            policy.epsilon_min = low
            policy.epsilon_max = high
            policy.explore_mode = "escalate"
        elif isinstance(policy, NetworkPolicy):
            policy.epsilon = min(max(policy.epsilon, low), high)
            policy.explore_mode = "escalate"
        return policy

    def _learn_online(self, loaded: _Loaded) -> None:
        learner = loaded.learner
        if learner is None:
            return
        try:
            self.feedback.ingest()
            rows = self.feedback.joined(since_id=self._floor, limit=5000)
        except Exception:
            log.warning("online learning: cannot read the feedback log", exc_info=True)
            return
        pending_floor: int | None = None
        with self._lock:
            for d in rows:
                if d.id in self._learned or d.policy_version != loaded.name:
                    continue
                if d.cost is None:
                    pending_floor = d.id if pending_floor is None else min(pending_floor, d.id)
                    continue
                state = int(loaded.policy.discretizer.index(d.obs[None, :])[0])  # type: ignore[attr-defined]
                revealed = {a: float(d.revealed[a]) for a in range(3) if np.isfinite(d.revealed[a])}
                learner.update(state, d.action, float(d.cost), revealed=revealed)
                self._learned.add(d.id)
        if rows:
            self._floor = (pending_floor - 1) if pending_floor is not None else rows[-1].id

    def _fallback_decision(self, features: FeaturesLike) -> Any:
        fallback = self.fallback
        if fallback is None:
            return self._default_fallback.decide(features)
        if callable(fallback) and not hasattr(fallback, "decide"):
            return fallback(getattr(features, "workflow", None)).decide(features)
        return fallback.decide(features)  # type: ignore[union-attr]

    @staticmethod
    def _why(loaded: _Loaded, obs: Any, greedy_action: int, drawn: int) -> str:
        policy = loaded.policy
        head = f"{loaded.name} ({loaded.info.get('learner') or policy.kind})"
        if isinstance(policy, TabularPolicy):
            state = int(policy.discretizer.index(obs)[0])
            c = policy.costs[state]
            head += (
                f": expected cost approve {c[APPROVE]:.2f}, reject {c[REJECT]:.2f}, "
                f"escalate {c[ESCALATE]:.2f}"
            )
        if drawn != greedy_action:
            return f"{head}; exploring: {ACTIONS[drawn]} instead of {ACTIONS[greedy_action]}"
        return f"{head}; chose {ACTIONS[drawn]}"

    @property
    def serving(self) -> str | None:
        """The policy version being served (``gate-policy:N``), or None."""
        return None if self._loaded is None else self._loaded.name


def load_gate(
    settings: Settings,
    registry: RegistryLike,
    *,
    fallback: Fallback = None,
    db: Any = None,
    online: bool = False,
) -> LearnedGate:
    """The gate for the order actions: serves the production ``gate_policy_model`` when there is
    one (hot-reloaded), else ``fallback`` (the threshold gate of the workflow).

    :param db: the application database; with ``online=True`` a tabular policy keeps learning
        from the feedback log in this process.
    """
    feedback = None
    if online and db is not None:
        from gpt2_agent.rl.feedback_log import FeedbackLog

        feedback = FeedbackLog(db, CostModel.from_settings(settings))
    gate = LearnedGate(settings, registry, fallback=fallback, feedback=feedback)
    gate.refresh(force=True)
    return gate


__all__ = ["LearnedGate", "ThresholdFallback", "load_gate"]
