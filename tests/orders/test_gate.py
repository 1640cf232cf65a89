"""The automation gate: thresholds, per-workflow settings, the hard amount rule, and its log."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from gpt2_agent.actions.gate import (
    AutomationGate,
    GateDecision,
    GateFeatures,
    GateService,
    ThresholdGate,
    automation_gate_task,
)
from gpt2_agent.config import Settings, load_settings
from gpt2_agent.engine.errors import InvalidInput
from gpt2_agent.engine.handlers import TaskContext
from gpt2_agent.store import Database
from gpt2_agent.store.feedback_tables import GateDecisionLog
from tests.orders.conftest import task_row

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def features(p: float, amount: str = "100.00", workflow: str | None = "order-fulfillment") -> GateFeatures:
    return GateFeatures(probability=p, amount=Decimal(amount), order_no="66120", workflow=workflow)


@pytest.mark.parametrize(
    ("p", "amount", "action"),
    [
        (0.99, "100.00", "auto_approve"),
        (0.90, "100.00", "auto_approve"),  # the threshold itself approves
        (0.99, "500.00", "auto_approve"),  # so does the limit itself
        (0.99, "500.01", "escalate"),  # one cent above the limit needs a person
        (0.50, "100.00", "escalate"),
        (0.10, "100.00", "auto_reject"),  # the threshold itself rejects
        (0.01, "99999.00", "auto_reject"),
    ],
)
def test_threshold_gate(p: float, amount: str, action: str) -> None:
    gate = ThresholdGate(0.9, 0.1, Decimal("500.00"))
    decision = gate.decide(features(p, amount))
    assert decision.action == action
    assert decision.propensity == 1.0 and decision.policy_version == gate.policy_version
    assert decision.reason
    assert isinstance(gate, AutomationGate)


def test_thresholds_from_settings_per_workflow() -> None:
    settings = load_settings(
        gate_auto_approve_min_probability=0.8,
        gate_auto_reject_max_probability=0.2,
        gate_auto_approve_max_amount="300",
        gate_workflow_overrides={"vip": {"auto_approve_max_amount": "5000.00"}},
    )
    default = ThresholdGate.from_settings(settings, "order-fulfillment")
    vip = ThresholdGate.from_settings(settings, "vip")
    assert (default.approve_min, default.reject_max, default.max_amount) == (0.8, 0.2, Decimal("300"))
    assert (vip.approve_min, vip.max_amount) == (0.8, Decimal("5000.00"))
    assert default.policy_version != vip.policy_version
    assert default.decide(features(0.9, "1000.00")).action == "escalate"
    assert vip.decide(features(0.9, "1000.00")).action == "auto_approve"
    with pytest.raises(ValueError, match="unknown keys"):
        ThresholdGate.from_settings(load_settings(gate_workflow_overrides={"x": {"approve": "1"}}), "x")
    with pytest.raises(ValueError, match="auto_reject_max_probability < auto_approve_min_probability"):
        ThresholdGate(0.5, 0.5, Decimal("1"))
    with pytest.raises(ValueError):
        load_settings(gate_auto_approve_max_amount="NaN")


class Greedy:
    """A policy that approves everything; the hard rule must stop it above the limit."""

    policy_version = "greedy-1"

    def decide(self, features: GateFeatures) -> GateDecision:
        return GateDecision("auto_approve", "always", self.policy_version, propensity=0.7)


class Coin:
    """A stochastic policy: a different action on every call."""

    def __init__(self) -> None:
        self._actions = itertools.cycle(["auto_approve", "auto_reject", "escalate"])

    def decide(self, features: GateFeatures) -> GateDecision:
        return GateDecision(next(self._actions), "coin", "coin-1", propensity=1 / 3)  # type: ignore[arg-type]


def _settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"gate_auto_approve_max_amount": Decimal("500.00")})


@SQLITE_ONLY
def test_hard_amount_rule_holds_for_any_policy(settings: Settings, database: Database) -> None:
    service = GateService(_settings(settings), database, Greedy())
    small, _ = service.decide(features(0.3, "20.00"), key="k-small")
    big, _ = service.decide(features(0.99, "500.01"), key="k-big")
    assert small.action == "auto_approve" and small.propensity == 0.7
    assert big.action == "escalate" and "above the auto-approve limit" in big.reason
    assert big.policy_version == "greedy-1"


@SQLITE_ONLY
def test_each_step_is_decided_and_logged_once(settings: Settings, database: Database) -> None:
    task = automation_gate_task(GateService(_settings(settings), database, Coin()))
    inp = task.parse_input(
        {
            "probability": 0.42,
            "amount": "68.16",
            "order_no": "66120",
            "workflow": "order-fulfillment",
            "recommendation": "reject",
            "model_version": 3,
            "features": {"velocity_24h": 1.0},
        }
    )
    one, two = task_row(database, "automation_gate"), task_row(database, "automation_gate")
    first = task.fn(TaskContext(task_id=one, attempt=1, idempotency_key="run:7:gate"), inp)
    retried = task.fn(TaskContext(task_id=one, attempt=2, idempotency_key="run:7:gate"), inp)
    assert retried == first  # a retried step keeps the logged decision of a stochastic policy
    other = task.fn(TaskContext(task_id=two, attempt=1, idempotency_key="run:8:gate"), inp)
    assert other.decision_id != first.decision_id
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(GateDecisionLog)) == 2
        row = s.get(GateDecisionLog, first.decision_id)
        assert row is not None
        assert row.features["amount"] == "68.16" and row.features["extra"] == {"velocity_24h": 1.0}
        assert row.features["model_version"] == 3 and row.propensity == pytest.approx(1 / 3)
    for bad in ({"probability": 1.5, "amount": "1.00"}, {"probability": 0.5, "amount": "NaN"}):
        with pytest.raises(InvalidInput):
            task.parse_input(bad)
