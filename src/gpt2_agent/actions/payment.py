"""The ``order_payment`` action: charge an order through the payment gateway, exactly once.

Input example::

    {"order_no": "66120", "amount": "479.46", "currency": "CNY"}

The amount is a :class:`~decimal.Decimal` from input to ledger and must equal the order's amount
in the warehouse; a mismatch fails the step with the reason and charges nothing. The charge
carries the step's idempotency key, so a retried step (after a crash between the charge and the
engine's commit) gets the gateway's recorded result instead of a second charge; the outcome is
written once to ``order_payments`` (UNIQUE key) as well.

A declined payment (``insufficient_balance``, ``card_expired``) is an outcome, not an error: the
step succeeds with ``paid: false`` and the reason, so the workflow can still mail the customer
accordingly; the ``order-fulfillment`` workflow's last step then fails the run with that reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gpt2_agent.actions.gateway import (
    ChargeRequest,
    ChargeResult,
    GatewayUnavailable,
    PaymentGateway,
    PaymentRefused,
)
from gpt2_agent.actions.money import Amount, format_amount
from gpt2_agent.actions.warehouse import OrderNo, Warehouse
from gpt2_agent.engine.errors import PermanentError, RetryableError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType
from gpt2_agent.store import Database
from gpt2_agent.store.payments_tables import OrderPayment
from gpt2_agent.training.data.errors import OrderNotFoundError, SourceReadError

log = logging.getLogger(__name__)

TASK_NAME = "order_payment"
PaymentStatusName = Literal["paid", "insufficient_balance", "card_expired"]


class OrderPaymentInput(BaseModel):
    """What to charge; ``amount`` must equal the order's amount."""

    model_config = ConfigDict(extra="forbid")

    order_no: OrderNo
    amount: Amount
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")


class OrderPaymentOutput(BaseModel):
    """The charge's outcome, as recorded in the ledger."""

    status: PaymentStatusName
    paid: bool
    reason: str
    reference: str
    order_no: str
    amount: Amount
    currency: str
    card_brand: str | None = None
    card_last4: str | None = None
    charged_at: dt.datetime
    gateway: str
    payment_id: int  # row in order_payments
    replayed: bool = False  # the gateway had seen this step's key before


class PaymentLedger:
    """The application's record of charges in ``order_payments``, one row per idempotency key."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        result: ChargeResult,
        *,
        key: str,
        gateway: str,
        run_id: int | None = None,
        task_id: int | None = None,
    ) -> OrderPayment:
        """Insert the outcome, or return the row an earlier attempt of the same step wrote."""
        existing = self.get(key)
        if existing is not None:
            return existing
        try:
            with self.db.session() as session:
                row = OrderPayment(
                    idempotency_key=key,
                    run_id=run_id,
                    task_id=task_id,
                    order_no=result.order_no,
                    amount=result.amount,
                    currency=result.currency,
                    status=result.status.value,
                    reason=result.reason,
                    gateway=gateway,
                    reference=result.reference,
                    card_last4=result.card_last4,
                    charged_at=result.charged_at,
                )
                session.add(row)
                session.flush()
                return row
        except IntegrityError:
            found = self.get(key)
            if found is None:
                raise
            return found

    def get(self, key: str) -> OrderPayment | None:
        """The row for ``key``, if any."""
        with self.db.session() as session:
            return session.scalars(select(OrderPayment).where(OrderPayment.idempotency_key == key)).first()

    def for_order(self, order_no: str) -> list[OrderPayment]:
        """Every recorded charge of an order, oldest first."""
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(OrderPayment).where(OrderPayment.order_no == order_no).order_by(OrderPayment.id)
                )
            )


def order_payment_task(
    gateway: PaymentGateway, warehouse: Warehouse, ledger: PaymentLedger
) -> TaskType[OrderPaymentInput, OrderPaymentOutput]:
    """The ``order_payment`` task type bound to a gateway, the warehouse and the ledger."""

    def order_payment(ctx: TaskContext, inp: OrderPaymentInput) -> OrderPaymentOutput:
        try:
            order = warehouse.order(inp.order_no)
        except OrderNotFoundError:
            raise PermanentError(f"order {inp.order_no} not found; nothing was charged") from None
        except SourceReadError as exc:
            raise RetryableError(str(exc)) from exc
        if inp.currency != order.currency or inp.amount != order.amount:
            raise PermanentError(
                f"amount {format_amount(inp.amount)} {inp.currency} does not match order {order.order_no}'s "
                f"amount {format_amount(order.amount)} {order.currency}; nothing was charged"
            )
        key = ctx.idempotency_key or f"task:{ctx.task_id}"
        ctx.check_cancelled()
        try:
            result = gateway.charge(ChargeRequest(key, order.order_no, inp.amount, order.currency))
        except PaymentRefused as exc:
            raise PermanentError(f"payment refused: {exc}; nothing was charged") from exc
        except GatewayUnavailable as exc:
            raise RetryableError(str(exc)) from exc
        try:
            row = ledger.record(result, key=key, gateway=gateway.name, run_id=ctx.run_id, task_id=ctx.task_id)
        except SQLAlchemyError as exc:
            # The charge stands at the gateway; the retry replays it and records it then.
            raise RetryableError(f"recording payment {result.reference}: {exc}") from exc
        return OrderPaymentOutput(
            status=result.status.value,
            paid=result.status.value == "paid",
            reason=result.reason,
            reference=result.reference,
            order_no=result.order_no,
            amount=result.amount,
            currency=result.currency,
            card_brand=result.card_brand,
            card_last4=result.card_last4,
            charged_at=result.charged_at,
            gateway=gateway.name,
            payment_id=int(row.id),
            replayed=result.replayed,
        )

    return TaskType(
        name=TASK_NAME,
        input_model=OrderPaymentInput,
        output_model=OrderPaymentOutput,
        fn=order_payment,
        retry=RetryPolicy(
            max_attempts=5, initial_backoff_seconds=1.0, multiplier=2.0, max_backoff_seconds=60.0
        ),
        timeout_seconds=60.0,
        description="Charge an order's amount through the payment gateway, once per step.",
    )
