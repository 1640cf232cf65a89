"""``order-fulfillment`` end to end on SQLite and PostgreSQL: every path a real order can take.

The real ``ThresholdGate`` from the settings routes the orders: everything within the amount limit
is auto-approved, larger orders go to a person (who approves one and rejects one), and a second
copy of the workflow with strict per-workflow thresholds auto-rejects. Payment outcomes come from
the seeded warehouse: 66120 pays, one order's balance is too low, one order's card has expired.
Mail goes to a real SMTP server on 127.0.0.1; receipts go to storage.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import select

from gpt2_agent.actions.storage import FileService, Storage
from gpt2_agent.actions.warehouse import Warehouse
from gpt2_agent.engine.errors import Conflict, Forbidden
from gpt2_agent.engine.workflows import parse_workflow
from gpt2_agent.store.engine_tables import StoredFile, Task
from gpt2_agent.store.feedback_tables import ApprovalFeedback, GateDecisionLog
from gpt2_agent.store.payments_tables import OrderPayment
from tests.orders.conftest import WORKFLOWS, OrderEnv, pick_orders

TERMINAL = ("succeeded", "failed", "rejected", "cancelled")


def _strict_copy() -> str:
    text = (WORKFLOWS / "order-fulfillment.yaml").read_text(encoding="utf-8")
    return text.replace("name: order-fulfillment\n", "name: order-fulfillment-strict\n", 1)


def _receipt_text(env: OrderEnv, run_id: int) -> str | None:
    with env.db.session() as s:
        row = s.scalars(
            select(StoredFile).join(Task, Task.id == StoredFile.task_id).where(Task.run_id == run_id)
        ).first()
    if row is None:
        return None
    files = FileService(env.db, Storage(env.settings.storage_path), env.settings)
    with files.storage.open(row.sha256) as fh:
        return fh.read().decode("utf-8")


def test_every_path_of_an_order(make_env: Callable[..., OrderEnv], warehouse_url: str) -> None:
    picked = pick_orders(Warehouse(warehouse_url))
    limit = Decimal(picked["limit"])
    env = make_env(
        gate_auto_approve_min_probability=1e-6,
        gate_auto_reject_max_probability=0.0,
        gate_auto_approve_max_amount=limit,
        gate_workflow_overrides={
            "order-fulfillment-strict": {
                "auto_approve_min_probability": Decimal("1"),
                "auto_reject_max_probability": Decimal("0.999999"),
            }
        },
    )
    env.engine.workflows.register(parse_workflow(_strict_copy(), "order-fulfillment-strict.yaml"))
    orders = {key: env.warehouse.order(picked[key]) for key in picked if key != "limit"}
    before = {key: env.balance(o.order_no) for key, o in orders.items()}

    runs = {
        "paid": env.start(picked["paid"]),
        "insufficient": env.start(picked["insufficient"]),
        "expired": env.start(picked["expired"]),
        "big_0": env.start(picked["big_0"]),
        "big_1": env.start(picked["big_1"]),
        "risky": env.start(picked["risky"], workflow="order-fulfillment-strict"),
    }

    # --- people decide the two escalated orders (four eyes; one decision per item) ---------------
    for key in ("big_0", "big_1"):
        env.wait(runs[key], ("waiting_approval",))
    approve = env.approval_of(runs["big_0"])
    assert approve.context["order_no"] == picked["big_0"]
    assert approve.context["recommendation"] in ("approve", "reject")
    assert 0.0 <= approve.context["probability"] <= 1.0
    assert approve.context["order"]["amount"] == f"{orders['big_0'].amount:.2f}"
    assert "above the auto-approve limit" in approve.context["gate_reason"]
    assert 1 <= len(approve.context["reasons"]) <= 3
    with pytest.raises(Forbidden):
        env.engine.decide(approve.id, approve=True, by="clerk")
    env.engine.decide(approve.id, approve=True, by="manager", comment="known customer")
    with pytest.raises(Conflict):
        env.engine.decide(approve.id, approve=False, by="auditor")
    reject = env.approval_of(runs["big_1"])
    env.engine.decide(reject.id, approve=False, by="manager", comment="does not look right")

    done = {key: env.wait(run_id, TERMINAL) for key, run_id in runs.items()}
    after = {key: env.balance(o.order_no) for key, o in orders.items()}
    sink = env.sink

    # --- paid without a person; paid after a person approved ------------------------------------
    for key, gate, reviewed in (("paid", "auto_approve", False), ("big_0", "escalate", True)):
        run, order = done[key], orders[key]
        assert run.status == "succeeded", run.error
        out = run.output
        assert (out["status"], out["gate"], out["reviewed"]) == ("paid", gate, reviewed)
        assert out["amount"] == f"{order.amount:.2f}" and out["currency"] == "CNY"
        assert after[key] == before[key] - order.amount  # Decimal, exactly once
        [mail] = sink.to(order.customer_email)
        assert "已付款" in str(mail["Subject"]) and order.order_no in str(mail["Subject"])
        body = mail.get_content()
        assert f"{order.amount:.2f} CNY" in body and out["reference"] in body and order.customer_name in body
        receipt = _receipt_text(env, run.id)
        assert receipt is not None and out["reference"] in receipt and f"{order.amount:.2f} CNY" in receipt
        [entry] = env.gateway.ledger_entries(order.order_no)
        assert entry["status"] == "paid" and entry["amount"] == order.amount
        with env.db.session() as s:
            [payment] = s.scalars(select(OrderPayment).where(OrderPayment.run_id == run.id)).all()
            assert payment.amount == order.amount and payment.reference == out["reference"]

    # --- declined payments: the run fails with the reason, the customer is told -----------------
    for key, status, words in (
        ("insufficient", "insufficient_balance", "余额不足"),
        ("expired", "card_expired", "银行卡已过期"),
    ):
        run, order = done[key], orders[key]
        assert run.status == "failed" and f"not paid: {status}" in (run.error or ""), run.error
        assert run.context["pay"]["output"]["status"] == status
        assert after[key] == before[key]
        [mail] = sink.to(order.customer_email)
        assert words in str(mail["Subject"])
        assert _receipt_text(env, run.id) is None
        [entry] = env.gateway.ledger_entries(order.order_no)
        assert entry["status"] == status

    # --- rejections: by the gate (mailed, nothing charged), by a person (run rejected) ----------
    risky = done["risky"]
    assert risky.status == "failed" and "rejected" in (risky.error or "")
    assert risky.context["gate"]["output"]["action"] == "auto_reject"
    assert risky.context["pay"]["skipped"] is True
    [mail] = sink.to(orders["risky"].customer_email)
    assert "未通过审核" in str(mail["Subject"])
    rejected = done["big_1"]
    assert rejected.status == "rejected"
    assert sink.to(orders["big_1"].customer_email) == []
    for key in ("risky", "big_1"):
        assert after[key] == before[key]
        assert env.gateway.ledger_entries(orders[key].order_no) == []
    assert len(sink.messages) == 5

    # --- the logs the learning parts read ----------------------------------------------------------
    with env.db.session() as s:
        gate_rows = {r.order_no: r for r in s.scalars(select(GateDecisionLog))}
        feedback = {r.order_no: r for r in s.scalars(select(ApprovalFeedback))}
    assert len(gate_rows) == 6
    assert gate_rows[picked["paid"]].action == "auto_approve"
    assert gate_rows[picked["risky"]].action == "auto_reject"
    assert gate_rows[picked["big_0"]].action == "escalate"
    assert all(r.propensity == 1.0 and r.policy_version.startswith("thresholds-") for r in gate_rows.values())
    assert gate_rows[picked["paid"]].features["amount"] == f"{orders['paid'].amount:.2f}"
    assert set(feedback) == {picked["big_0"], picked["big_1"]}
    yes, no = feedback[picked["big_0"]], feedback[picked["big_1"]]
    assert (yes.decision, yes.decided_by, yes.comment) == ("approve", "manager", "known customer")
    assert (no.decision, no.comment) == ("reject", "does not look right")
    for row in (yes, no):
        assert row.model == "order-audit" and row.model_version == env.model_version
        assert row.recommendation in ("approve", "reject") and row.probability is not None
        assert row.gate_action == "escalate" and row.features["text"]
        assert row.decided_at is not None


def test_unknown_order_fails_the_run(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    run = env.wait(env.start("999999999"), TERMINAL)
    assert run.status == "failed" and "order 999999999 not found" in (run.error or "")
    assert env.sink.messages == []
