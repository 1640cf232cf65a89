"""Fixtures of the rl tests: toy order streams, the cost model and hard rules, log rows."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import torch

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.safety import HardRules
from gpt2_agent.rl.stream import OrderStream, toy_stream
from gpt2_agent.store import Database
from gpt2_agent.store.engine_tables import Approval, Task, WorkflowRun
from gpt2_agent.store.feedback_tables import ApprovalFeedback, GateDecisionLog
from gpt2_agent.store.payments_tables import OrderPayment


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny networks: a second thread only adds synchronisation (and the CI machine has two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render modes.*")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def train_stream() -> OrderStream:
    return toy_stream(1500, seed=0, noise=0.3)


@pytest.fixture(scope="session")
def test_stream() -> OrderStream:
    return toy_stream(3000, seed=1, noise=0.3)


@pytest.fixture
def costs() -> CostModel:
    return CostModel()


@pytest.fixture
def rules() -> HardRules:
    return HardRules(Decimal("500.00"), 0.4, 0.6)


class LogRows:
    """Writes the rows a real order flow writes (runs, gate decisions, approvals, payments)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.n = 0

    def run(self) -> int:
        with self.db.session() as s:
            run = WorkflowRun(workflow="order-fulfillment", status="running", input={}, definition={})
            s.add(run)
            s.flush()
            return int(run.id)

    def decision(
        self,
        *,
        probability: float,
        amount: str,
        action: str,
        propensity: float = 1.0,
        policy: str = "thresholds-x",
        run_id: int | None = None,
        order_no: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        self.n += 1
        with self.db.session() as s:
            row = GateDecisionLog(
                idempotency_key=f"key-{self.n}",
                run_id=run_id,
                workflow="order-fulfillment",
                order_no=order_no or str(10000 + self.n),
                features={
                    "probability": probability,
                    "amount": amount,
                    "currency": "CNY",
                    "extra": extra or {},
                },
                action=action,
                reason="test",
                policy_version=policy,
                propensity=propensity,
            )
            s.add(row)
            s.flush()
            return int(row.id)

    def review(self, run_id: int, decision: str, *, text: str = "an order") -> int:
        with self.db.session() as s:
            task = Task(type="approval", status="succeeded", input={}, run_id=run_id, step_name="review")
            s.add(task)
            s.flush()
            approval = Approval(
                run_id=run_id,
                task_id=task.id,
                step_name="review",
                status="approved" if decision == "approve" else "rejected",
                decided_by="rita",
                decided_at=dt.datetime.now(dt.UTC),
            )
            s.add(approval)
            s.flush()
            fb = ApprovalFeedback(
                approval_id=approval.id,
                run_id=run_id,
                workflow="order-fulfillment",
                step_name="review",
                order_no="10001",
                features={"text": text},
                decision=decision,
                decided_by="rita",
                decided_at=dt.datetime.now(dt.UTC),
            )
            s.add(fb)
            s.flush()
            return int(fb.id)

    def payment(self, run_id: int, status: str, amount: str = "100.00") -> int:
        with self.db.session() as s:
            row = OrderPayment(
                idempotency_key=f"pay-{run_id}-{status}",
                run_id=run_id,
                order_no="10001",
                amount=Decimal(amount),
                currency="CNY",
                status=status,
                gateway="sandbox",
                reference=f"PAY{run_id}",
                charged_at=dt.datetime.now(dt.UTC),
            )
            s.add(row)
            s.flush()
            return int(row.id)


@pytest.fixture
def log_rows(database: Database) -> LogRows:
    return LogRows(database)
