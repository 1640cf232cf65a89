"""The server's automation gate: the promoted ``gate-policy`` decides (hot-reloaded, under the hard
rules), the settings' thresholds decide without one, and ``/api/v1/stats`` reports which and at what cost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpt2_agent.actions.gate import GateFeatures, ThresholdGate
from gpt2_agent.api import create_app
from gpt2_agent.api.keys import create_key
from gpt2_agent.cli.rl import promote_policy, register_policy
from gpt2_agent.config import Settings
from gpt2_agent.registry import Registry
from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.features import ACTIONS, observe
from gpt2_agent.rl.feedback_log import FeedbackLog
from gpt2_agent.rl.online import run_tabular
from gpt2_agent.rl.policies import TabularPolicy
from gpt2_agent.rl.safety import HardRules
from gpt2_agent.rl.stream import toy_stream
from gpt2_agent.rl.tabular import TabularConfig, TabularLearner
from gpt2_agent.store import Database
from gpt2_agent.store.feedback_tables import GateDecisionLog

WORKFLOW = "order-fulfillment"
# (probability, amount): a confident approve and reject, a middling order the trained policy
# automates where the default thresholds ask a person, one in the hard rules' unsure band, and a
# confident one above the amount limit.
PROBES = [(0.99, "100.00"), (0.8, "50.00"), (0.02, "100.00"), (0.5, "20.00"), (0.99, "900.00")]


@pytest.fixture
def gate_settings(settings: Settings) -> Settings:
    """No reload delay and no exploration, so each decision is the policy's greedy one."""
    return settings.model_copy(
        update={
            "gate_policy_reload_seconds": 0.0,
            "gate_explore_min": 0.0,
            "gate_explore_max": 0.0,
            "gate_review_cost": 10.0,
            "gate_workflow_overrides": {"vip": {"auto_approve_max_amount": Decimal("5000.00")}},
        }
    )


class Server:
    """A TestClient on ``create_app`` (executor running) with an admin and a submitter key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.db: Database = self.app.state.db
        self.admin = {"Authorization": f"Bearer {create_key(self.db, name='root', role='admin')[1]}"}
        self.clerk = {"Authorization": f"Bearer {create_key(self.db, name='sam', role='submitter')[1]}"}
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def decide(self, p: float, amount: str, workflow: str = WORKFLOW) -> dict[str, Any]:
        """Run one ``automation_gate`` task through the API and return its output."""
        body = {"probability": p, "amount": amount, "workflow": workflow, "order_no": "66120"}
        r = self.client.post(
            "/api/v1/tasks", json={"type": "automation_gate", "input": body}, headers=self.clerk
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            task = self.client.get(f"/api/v1/tasks/{r.json()['id']}", headers=self.admin).json()
            if task["status"] in ("succeeded", "failed"):
                assert task["status"] == "succeeded", task
                return task["output"]  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise AssertionError(f"gate task {r.json()['id']} did not finish")

    def gate_stats(self) -> dict[str, Any]:
        r = self.client.get("/api/v1/stats", headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()["gate"]  # type: ignore[no-any-return]

    def logged(self) -> list[GateDecisionLog]:
        with self.db.session() as s:
            return list(s.scalars(select(GateDecisionLog).order_by(GateDecisionLog.id)))


@pytest.fixture
def serve(gate_settings: Settings) -> Iterator[Any]:
    started: list[TestClient] = []

    def start() -> Server:
        server = Server(gate_settings)
        server.client.__enter__()
        started.append(server.client)
        return server

    yield start
    for client in started:
        client.__exit__(None, None, None)


def train_and_promote(settings: Settings, db: Database) -> tuple[TabularPolicy, str]:
    """A tiny Q-learning policy trained online on a toy stream, registered and promoted the way
    ``gpt2-agent rl train`` and ``rl promote`` do it."""
    costs = CostModel.from_settings(settings)
    learner = TabularLearner(config=TabularConfig(epsilon_min=0.0, epsilon_max=0.0), prior=costs)
    stream = toy_stream(400, seed=0, noise=0.3)
    run = run_tabular(learner, stream, costs, HardRules.from_settings(settings), seed=0)
    info = register_policy(
        settings,
        Registry(settings, db),
        learner.policy,
        metrics={"cost_per_order": run.cost_per_order},
        eval_set_hash=stream.fingerprint(),
        meta={"learner": "q_learning"},
        created_by="tests",
    )
    promote_policy(settings, db, info.version, by="tests")
    return learner.policy, f"gate-policy:{info.version}"


def policy_action(policy: TabularPolicy, settings: Settings, p: float, amount: str) -> str:
    """What the policy chooses greedily, after the hard rules."""
    raw = policy.probabilities(observe(p, float(amount))[None, :])[0]
    action, _ = HardRules.from_settings(settings).enforce(int(np.argmax(raw)), p, Decimal(amount))
    return ACTIONS[action]


def threshold_decision(settings: Settings, p: float, amount: str, workflow: str = WORKFLOW) -> Any:
    gate = ThresholdGate.from_settings(settings, workflow)
    return gate.decide(GateFeatures(probability=p, amount=Decimal(amount), workflow=workflow))


def test_without_a_policy_the_thresholds_decide_then_a_promotion_takes_over(
    serve: Any, gate_settings: Settings
) -> None:
    server = serve()
    for p, amount in PROBES:
        out = server.decide(p, amount)
        expected = threshold_decision(gate_settings, p, amount)
        assert (out["action"], out["policy_version"], out["propensity"]) == (
            expected.action,
            expected.policy_version,
            1.0,
        )
    vip = server.decide(0.99, "900.00", workflow="vip")  # per-workflow thresholds still apply
    assert vip["action"] == "auto_approve"
    assert vip["policy_version"] == threshold_decision(gate_settings, 0.99, "900.00", "vip").policy_version
    stats = server.gate_stats()
    assert stats["policy"] == "threshold" and stats["decisions"] == len(PROBES) + 1
    assert stats["last_decision_policy"] == vip["policy_version"]

    # Promoted while the server runs: the next decision is the policy's (hot reload).
    policy, version = train_and_promote(gate_settings, server.db)
    for p, amount in PROBES:
        out = server.decide(p, amount)
        assert (out["action"], out["policy_version"]) == (
            policy_action(policy, gate_settings, p, amount),
            version,
        )
    assert server.gate_stats()["policy"] == version
    rows = server.logged()
    assert [r.policy_version for r in rows[-len(PROBES) :]] == [version] * len(PROBES)
    assert all(r.policy_version.startswith("thresholds-") for r in rows[: len(PROBES) + 1])


def test_a_policy_promoted_before_start_decides_under_the_hard_rules(
    serve: Any, gate_settings: Settings, database: Database
) -> None:
    policy, version = train_and_promote(gate_settings, database)
    server = serve()
    assert server.app.state.gate.serving == version  # loaded when the server was built
    outputs = [server.decide(p, amount) for p, amount in PROBES]
    actions = [o["action"] for o in outputs]
    assert actions == [policy_action(policy, gate_settings, p, a) for p, a in PROBES]
    # It is the learned policy deciding, not the thresholds under another name.
    assert actions != [threshold_decision(gate_settings, p, a).action for p, a in PROBES]
    unsure, over = outputs[3], outputs[4]
    assert unsure["action"] == "escalate"  # 0.5 is in the unsure band, whatever the policy prefers
    raw = policy.probabilities(observe(0.99, 900.0)[None, :])[0]
    assert ACTIONS[int(np.argmax(raw))] == "auto_approve"  # the policy would approve 900.00 ...
    assert over["action"] == "escalate" and "limit" in over["reason"]  # ... the hard rule escalates
    rows = server.logged()
    assert [(r.action, r.policy_version, r.propensity) for r in rows] == [(a, version, 1.0) for a in actions]


def test_stats_report_policy_automation_rate_and_cost_per_order(
    serve: Any, gate_settings: Settings, database: Database
) -> None:
    _, version = train_and_promote(gate_settings, database)
    server = serve()
    empty = server.gate_stats()
    costs = CostModel.from_settings(gate_settings)
    assert empty["policy"] == version and empty["decisions"] == 0
    assert empty["automation_rate"] is None and empty["cost_per_order"] is None
    assert empty["cost_model"] == costs.as_dict() and empty["cost_model"]["review_cost"] == 10.0

    outputs = [server.decide(p, amount) for p, amount in PROBES]
    approved = next(o for o, (_, a) in zip(outputs, PROBES, strict=True) if o["action"] == "auto_approve")
    rejected = next(o for o in outputs if o["action"] == "auto_reject")
    feedback = FeedbackLog(database)
    feedback.record_outcome("chargeback", "chargeback", decision_id=approved["decision_id"])
    feedback.record_outcome("chargeback", "clear", decision_id=rejected["decision_id"])
    amount_of = {o["decision_id"]: float(a) for o, (_, a) in zip(outputs, PROBES, strict=True)}

    stats = server.gate_stats()
    automated = sum(o["action"] != "escalate" for o in outputs)
    assert stats["policy"] == version and stats["last_decision_policy"] == version
    assert stats["decisions"] == len(PROBES) and stats["by_policy"] == {version: len(PROBES)}
    assert stats["by_action"] == {a: sum(o["action"] == a for o in outputs) for a in ACTIONS}
    assert stats["automation_rate"] == pytest.approx(automated / len(PROBES))
    assert stats["known_outcomes"] == 2
    expected_cost = (
        float(costs.wrong_approval(amount_of[approved["decision_id"]]))
        + float(costs.wrong_rejection(amount_of[rejected["decision_id"]]))
    ) / 2
    assert stats["cost_per_order"] == pytest.approx(expected_cost)
    assert stats["rejected_feedback"] == 0
    # Approvers and admins see the numbers; a submitter does not.
    assert server.client.get("/api/v1/stats", headers=server.clerk).status_code == 403


@pytest.mark.parametrize("online", [False, True])
def test_online_learning_is_a_setting(gate_settings: Settings, online: bool) -> None:
    server = Server(gate_settings.model_copy(update={"gate_online_learning": online}))
    # The serving gate learns from the feedback log only when the setting asks for it.
    assert (server.app.state.gate.feedback is not None) is online
