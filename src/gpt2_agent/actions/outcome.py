"""The ``order_outcome`` action: the last step of an order run, which fails it unless it was paid.

A declined payment or an automatic rejection is not an error of the step that produced it (the
customer still has to be told), so those steps succeed and the run goes on to the notice. This
step then ends the run: ``succeeded`` for a paid order, ``failed`` with the reason otherwise
(``run.error`` reads e.g. ``step 'outcome' failed: PermanentError: order 12345 not paid:
insufficient_balance (the account balance does not cover the amount)``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpt2_agent.actions.warehouse import OrderNo
from gpt2_agent.engine.errors import PermanentError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType

TASK_NAME = "order_outcome"


class OrderOutcomeInput(BaseModel):
    """How the order ended, and why (the payment's or the gate's reason)."""

    model_config = ConfigDict(extra="forbid")

    order_no: OrderNo
    status: Literal["paid", "insufficient_balance", "card_expired", "rejected"]
    reason: str = Field(default="", max_length=2000)


class OrderOutcomeOutput(BaseModel):
    """Only a paid order gets here."""

    order_no: str
    status: Literal["paid"]


def order_outcome(ctx: TaskContext, inp: OrderOutcomeInput) -> OrderOutcomeOutput:
    """Succeed for a paid order; fail the run with the reason for anything else."""
    if inp.status != "paid":
        detail = f" ({inp.reason})" if inp.reason else ""
        what = "rejected" if inp.status == "rejected" else f"not paid: {inp.status}"
        raise PermanentError(f"order {inp.order_no} {what}{detail}")
    return OrderOutcomeOutput(order_no=inp.order_no, status="paid")


def order_outcome_task() -> TaskType[OrderOutcomeInput, OrderOutcomeOutput]:
    """The ``order_outcome`` task type."""
    return TaskType(
        name=TASK_NAME,
        input_model=OrderOutcomeInput,
        output_model=OrderOutcomeOutput,
        fn=order_outcome,
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=1),  # a pure check: safe to rerun
        timeout_seconds=10.0,
        description="End an order run: succeed when paid, fail with the reason otherwise.",
    )
