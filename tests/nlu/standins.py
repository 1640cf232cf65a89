"""Stand-in task types and workflow with the names the dialogue uses (``order_audit``,
``order_payment``, ``send_email``, workflow ``order-fulfillment``), so the dialogue is tested
against a real engine without the warehouse, the payment gateway or SMTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.handlers import TaskContext, TaskType
from gpt2_agent.engine.workflows import parse_workflow


class AuditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_no: str = Field(pattern=r"^[0-9]{1,12}$")


class AuditOut(BaseModel):
    order_no: str
    decision: Literal["approve", "reject"]
    probability: float


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_no: str = Field(pattern=r"^[0-9]{1,12}$")
    amount: Decimal = Field(gt=0, decimal_places=2)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")


class PaymentOut(BaseModel):
    status: str
    paid: bool
    reason: str
    order_no: str
    amount: str
    currency: str


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str]
    subject: str
    body: str


class EmailOut(BaseModel):
    sent: bool


def audit(ctx: TaskContext, inp: AuditIn) -> AuditOut:
    return AuditOut(order_no=inp.order_no, decision="approve", probability=0.97)


def pay(ctx: TaskContext, inp: PaymentIn) -> PaymentOut:
    return PaymentOut(
        status="paid",
        paid=True,
        reason="ok",
        order_no=inp.order_no,
        amount=f"{inp.amount:.2f}",
        currency=inp.currency,
    )


def email(ctx: TaskContext, inp: EmailIn) -> EmailOut:
    return EmailOut(sent=True)


WORKFLOW = """
name: order-fulfillment
input: {order_no: string}
steps:
  - name: audit
    uses: order_audit
    with: {order_no: "${{ input.order_no }}"}
"""


def register(engine: Engine, settings: Settings, *, audit_task: bool = True) -> None:
    """Register the stand-ins (``audit_task=False`` leaves only the workflow's route to audits)."""
    engine.handlers.register(TaskType("order_audit", AuditIn, AuditOut, audit))
    engine.handlers.register(TaskType("order_payment", PaymentIn, PaymentOut, pay))
    engine.handlers.register(TaskType("send_email", EmailIn, EmailOut, email))
    engine.workflows.register(parse_workflow(WORKFLOW, "order-fulfillment.yaml"))
