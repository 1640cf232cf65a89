"""Policies as registry artifacts, the hot-reloading learned gate, and the hard rules it cannot break."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gpt2_agent.config import Settings
from gpt2_agent.registry import Registry
from gpt2_agent.rl.artifact import PolicyVersionMismatch, load_policy, save_policy
from gpt2_agent.rl.features import APPROVE, ESCALATE, REJECT, GateFeatures, observe
from gpt2_agent.rl.gate import LearnedGate, ThresholdFallback, load_gate
from gpt2_agent.rl.policies import (
    MLP,
    Discretizer,
    FixedPolicy,
    NetworkPolicy,
    Policy,
    TabularPolicy,
    ThresholdPolicy,
)
from gpt2_agent.rl.safety import HardRules
from gpt2_agent.store import Database

LIMIT = Decimal("500.00")


def _features(p: float, amount: str, **extra: float) -> GateFeatures:
    return GateFeatures(
        probability=p, amount=Decimal(amount), order_no="10001", workflow="order-fulfillment", extra=extra
    )


def _publish(
    settings: Settings, registry: Registry, policy: Policy, tmp: Path, *, promote: bool = True
) -> int:
    folder = save_policy(policy, tmp / f"policy-{len(list(tmp.iterdir()))}", meta={"learner": "test"})
    version = registry.register(folder, settings.gate_policy_model, task="policy", created_by="tests").version
    if promote:
        registry.set_alias(settings.gate_policy_model, "production", version, by="tests")
    return version


def _table_policy(
    settings: Settings,
    database: Database,
    tmp: Path,
    costs: list[float],
    *,
    explore: tuple[float, float],
    visits: float,
    **policy: Any,
) -> tuple[Settings, Registry]:
    """Promote a tabular policy with the same action costs in every state; settings that reload it
    at once and explore within ``explore``."""
    settings = settings.model_copy(
        update={
            "gate_policy_reload_seconds": 0.0,
            "gate_explore_min": explore[0],
            "gate_explore_max": explore[1],
        }
    )
    registry = Registry(settings, database)
    disc = Discretizer()
    table = np.tile(costs, (disc.n_states, 1))
    _publish(settings, registry, TabularPolicy(disc, table, np.full_like(table, visits), **policy), tmp)
    return settings, registry


def _policies() -> list[Policy]:
    disc = Discretizer(p_edges=(0.5,), amount_edges=(100.0,), new_account=False, address_mismatch=False)
    rng = np.random.default_rng(0)
    return [
        FixedPolicy(REJECT),
        ThresholdPolicy(0.9, 0.1),
        TabularPolicy(disc, rng.random((disc.n_states, 3)), rng.random((disc.n_states, 3)), epsilon_max=0.05),
        NetworkPolicy(MLP([7, 8, 3], "tanh"), "logits"),
        NetworkPolicy(MLP([7, 8, 3], "relu"), "q", epsilon=0.02),
    ]


@pytest.mark.parametrize("policy", _policies(), ids=lambda p: type(p).__name__)
def test_policies_round_trip_through_safetensors_and_json(policy: Policy, tmp_path: Path) -> None:
    folder = save_policy(policy, tmp_path / "p")
    assert sorted(f.name for f in folder.iterdir()) == sorted(
        ["config.json", "policy.json", "policy.safetensors"]
        + (["q_table.json"] if isinstance(policy, TabularPolicy) else [])
    )
    loaded, info = load_policy(folder)
    obs = np.stack([observe(p, a) for p, a in [(0.05, 50), (0.5, 300), (0.97, 80), (0.99, 2000)]])
    np.testing.assert_allclose(loaded.probabilities(obs), policy.probabilities(obs))
    assert info["kind"] == policy.kind


def test_a_policy_for_another_environment_is_refused(tmp_path: Path) -> None:
    folder = save_policy(FixedPolicy(ESCALATE), tmp_path / "p")
    info = json.loads((folder / "policy.json").read_text())
    info["env_version"] = "order-stream/0"
    (folder / "policy.json").write_text(json.dumps(info))
    with pytest.raises(PolicyVersionMismatch, match="order-stream/0"):
        load_policy(folder)


def test_the_gate_serves_production_and_hot_reloads(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"gate_policy_reload_seconds": 0.0, "gate_explore_max": 0.0})
    registry = Registry(settings, database)
    gate = load_gate(settings, registry)
    assert gate.serving is None
    assert gate.decide(_features(0.99, "100.00")).action == "auto_approve"  # the settings' thresholds
    v1 = _publish(settings, registry, FixedPolicy(ESCALATE), tmp_path)
    decision = gate.decide(_features(0.99, "100.00"))
    assert (decision.action, decision.policy_version, decision.propensity) == (
        "escalate",
        f"gate-policy:{v1}",
        1.0,
    )
    v2 = _publish(settings, registry, ThresholdPolicy(0.9, 0.1), tmp_path)
    assert gate.decide(_features(0.99, "100.00")).policy_version == f"gate-policy:{v2}"
    assert gate.decide(_features(0.02, "100.00")).action == "auto_reject"
    # A broken version is refused and the previous one keeps serving.
    folder = save_policy(FixedPolicy(APPROVE), tmp_path / "bad")
    info = json.loads((folder / "policy.json").read_text())
    info["env_version"] = "order-stream/0"
    (folder / "policy.json").write_text(json.dumps(info))
    v3 = registry.register(folder, settings.gate_policy_model, task="policy").version
    registry.set_alias(settings.gate_policy_model, "production", v3, by="tests")
    assert gate.decide(_features(0.99, "100.00")).policy_version == f"gate-policy:{v2}"
    history = registry.alias_history(settings.gate_policy_model, "production")
    assert [h.to_version for h in history] == [v1, v2, v3]


def test_hard_rules_hold_under_a_policy_that_tries_to_break_them(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"gate_policy_reload_seconds": 0.0})
    registry = Registry(settings, database)
    _publish(settings, registry, FixedPolicy(APPROVE), tmp_path)  # approves everything it can
    gate = LearnedGate(settings, registry, seed=0)
    over = gate.decide(_features(0.999, "500.01"))
    assert over.action == "escalate" and "above the auto-approve limit" in over.reason
    assert gate.decide(_features(0.999, "500.00")).action in (
        "auto_approve",
        "escalate",
    )  # at the limit: allowed
    unsure = gate.decide(_features(0.5, "20.00"))
    assert unsure.action == "escalate" and "unsure" in unsure.reason
    # The order actions' own service applies its limit too, and accepts this gate's decisions.
    from gpt2_agent.actions.gate import GateFeatures as ActionFeatures
    from gpt2_agent.actions.gate import GateService

    service = GateService(settings, database, gate)
    decision, row = service.decide(
        ActionFeatures(probability=0.999, amount=Decimal("900.00"), workflow="order-fulfillment"), key="k1"
    )
    assert decision.action == "escalate" and row > 0


@hsettings(max_examples=200, deadline=None)
@given(
    p=st.floats(0.0, 1.0),
    cents=st.integers(0, 10_000_00),
    action=st.sampled_from([APPROVE, REJECT, ESCALATE]),
)
def test_enforced_actions_never_break_the_rules(p: float, cents: int, action: int) -> None:
    rules = HardRules(LIMIT, 0.4, 0.6)
    amount = Decimal(cents).scaleb(-2)
    final, _ = rules.enforce(action, p, amount)
    if final == APPROVE:
        assert amount <= LIMIT and not 0.4 <= p <= 0.6
    if final == REJECT:
        assert not 0.4 <= p <= 0.6
    folded = rules.fold(np.eye(3)[[action]], np.array([p]), np.array([float(amount)]))[0]
    assert folded[final] == 1.0


def test_exploration_stays_within_the_bounds_and_propensities_are_logged(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    # approve is cheapest everywhere
    settings, registry = _table_policy(
        settings, database, tmp_path, [0.0, 50.0, 8.0], explore=(0.05, 0.2), visits=0.0, epsilon_max=0.9
    )
    gate = LearnedGate(settings, registry, seed=1)
    decisions = [gate.decide(_features(0.97, "80.00")) for _ in range(400)]
    explored = [d for d in decisions if d.action == "escalate"]
    assert 0.1 < len(explored) / len(decisions) < 0.3  # epsilon_max capped at 0.2 (not the artifact's 0.9)
    assert {round(d.propensity, 6) for d in explored} == {0.2}
    assert {round(d.propensity, 6) for d in decisions if d.action == "auto_approve"} == {0.8}
    assert all("exploring" in d.reason for d in explored)


def test_fallback_per_workflow(settings: Settings) -> None:
    class Never:
        def decide(self, features: object) -> str:
            return "asked"

    class NoRegistry:
        def generation(self, name: str) -> int:
            return 0

        def alias_version(self, name: str, alias: str) -> None:
            return None

        def resolve(self, ref: str, selector: object = None) -> None:
            raise AssertionError("nothing to resolve")

    gate = LearnedGate(settings, NoRegistry(), fallback=lambda workflow: Never())
    assert gate.decide(_features(0.99, "10.00")) == "asked"
    plain = ThresholdFallback(
        settings.model_copy(
            update={
                "gate_workflow_overrides": {"order-fulfillment": {"auto_approve_max_amount": Decimal("5")}}
            }
        )
    )
    assert plain.decide(_features(0.99, "10.00")).action == "escalate"


def test_the_gate_learns_online_from_the_feedback_log(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    from gpt2_agent.actions.gate import GateFeatures as ActionFeatures
    from gpt2_agent.actions.gate import GateService
    from gpt2_agent.rl.feedback_log import FeedbackLog

    # approving looks cheap everywhere
    settings, registry = _table_policy(
        settings, database, tmp_path, [1.0, 50.0, 8.0], explore=(0.0, 0.0), visits=3.0
    )
    gate = load_gate(settings, registry, db=database, online=True)
    service = GateService(settings, database, gate)
    feedback = FeedbackLog(database)
    actions = []
    for i in range(12):  # a fraud wave on small orders the policy thought were safe
        order = ActionFeatures(probability=0.97, amount=Decimal("80.00"), order_no=str(20000 + i))
        decision, row = service.decide(order, key=f"wave-{i}")
        actions.append(decision.action)
        if decision.action == "auto_approve":
            feedback.record_outcome("chargeback", "chargeback", decision_id=row)
    assert actions[0] == "auto_approve" and actions[-1] == "escalate"  # it learned, in this process
    assert gate.serving == "gate-policy:1"
