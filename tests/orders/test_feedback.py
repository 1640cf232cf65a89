"""Approvals feedback: only order approvals are recorded, once, in the decision's transaction."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from gpt2_agent.actions.feedback import FeedbackRecorder, install_feedback, list_feedback
from gpt2_agent.store.feedback_tables import ApprovalFeedback
from tests.orders.conftest import OrderEnv
from tests.plugins import sample

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_only_order_approvals_become_feedback(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env(gate_auto_approve_min_probability=1.0, gate_auto_reject_max_probability=0.0)
    install_feedback(env.engine)  # a second install changes nothing
    assert sum(isinstance(x, FeedbackRecorder) for x in env.engine.decision_listeners) == 1
    sample.register(env.engine, env.settings)

    other = env.engine.start_run("sample-approval", {"value": 20}, submitted_by="clerk").id
    order = env.start("66120")
    for run_id in (other, order):
        env.wait(run_id, ("waiting_approval",))
    env.engine.decide(env.approval_of(other).id, approve=True, by="manager")
    env.engine.decide(env.approval_of(order).id, approve=False, by="manager", comment="no")

    with env.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ApprovalFeedback)) == 1
        [row] = list_feedback(s, order_no="66120")
    assert (row.decision, row.comment, row.step_name, row.workflow) == (
        "reject",
        "no",
        "review",
        "order-fulfillment",
    )
    assert row.features["order"]["order_no"] == "66120" and row.features["tabular"]
