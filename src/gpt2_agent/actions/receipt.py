"""Customer notices and receipts, composed from the database only (never from generated text).

The ``order_notice`` action reads the order (customer, items, amount, card) from the warehouse
and the charge from the payment ledger, and returns the e-mail (``to``, ``subject``, ``body``)
and, for a paid order, the receipt (``receipt_name``, ``receipt_text``). The workflow hands these
to ``send_email`` and ``upload_file``, so every fact a customer reads comes from a table::

    {"order_no": "66120", "outcome": "paid", "payment_id": 7}

Receipts are UTF-8 text: the names and items are Chinese as often as not, and a PDF would need
a CJK font the project does not ship.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from gpt2_agent.actions.money import format_amount
from gpt2_agent.actions.payment import PaymentLedger
from gpt2_agent.actions.warehouse import OrderNo, OrderRecord, Warehouse
from gpt2_agent.engine.errors import PermanentError, RetryableError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType
from gpt2_agent.store.payments_tables import OrderPayment
from gpt2_agent.training.data.errors import OrderNotFoundError, SourceReadError

TASK_NAME = "order_notice"
Outcome = Literal["paid", "insufficient_balance", "card_expired", "rejected"]


class OrderNoticeInput(BaseModel):
    """Which order, how it ended, and (when it reached payment) the ledger row of the charge."""

    model_config = ConfigDict(extra="forbid")

    order_no: OrderNo
    outcome: Outcome
    payment_id: int | None = Field(default=None, ge=1)


class OrderNoticeOutput(BaseModel):
    """The e-mail to send and, for a paid order, the receipt to file."""

    to: list[str]
    subject: str
    body: str
    outcome: Outcome
    receipt_name: str | None = None
    receipt_text: str | None = None


def _money(order: OrderRecord) -> str:
    return f"{format_amount(order.amount)} {order.currency}"


def _card(order: OrderRecord) -> str:
    return f"{order.card_brand} **** {order.card_last4}"


def _items(order: OrderRecord) -> str:
    return "\n".join(f"  - {line}" for line in order.item_lines) or "  -"


def compose_notice(order: OrderRecord, outcome: Outcome, payment: OrderPayment | None) -> OrderNoticeOutput:
    """The customer's e-mail for ``outcome`` (Chinese, then English), built from stored facts."""
    no, money, name = order.order_no, _money(order), order.customer_name
    if outcome == "paid":
        if payment is None:
            raise PermanentError(f"order {no}: a paid notice needs the payment record")
        subject = f"订单 {no} 已付款 / Order {no} paid"
        zh = f"您的订单 {no} 已成功付款 {money}（{_card(order)}），收据编号 {payment.reference}。"
        en = (
            f"we received your payment of {money} for order {no} ({_card(order)}). "
            f"Receipt reference: {payment.reference}."
        )
    elif outcome == "insufficient_balance":
        subject = f"订单 {no} 付款失败：余额不足 / Order {no}: payment failed"
        zh = f"您的订单 {no} 付款 {money} 未成功：账户余额不足。请充值后重新下单。"
        en = (
            f"the payment of {money} for order {no} did not go through: your account balance does not "
            "cover it. Please top up your account and order again."
        )
    elif outcome == "card_expired":
        subject = f"订单 {no} 付款失败：银行卡已过期 / Order {no}: card expired"
        zh = f"您的订单 {no} 付款 {money} 未成功：银行卡 {_card(order)} 已过期。请更新银行卡后重新下单。"
        en = (
            f"the payment of {money} for order {no} did not go through: your card {_card(order)} has "
            "expired. Please update your card and order again."
        )
    else:
        subject = f"订单 {no} 未通过审核 / Order {no} could not be accepted"
        zh = f"很抱歉，您的订单 {no}（{money}）未通过审核，未扣款。"
        en = f"we are sorry: order {no} ({money}) could not be accepted. Nothing was charged."
    body = (
        f"{name}，您好：\n\n{zh}\n\n订单明细 / Items:\n{_items(order)}\n\n"
        f"Dear {name},\n\n{en}\n\n— GPT-2 Agent\n"
    )
    receipt_name = receipt_text = None
    if outcome == "paid" and payment is not None:
        receipt_name = f"receipt-{no}.txt"
        receipt_text = render_receipt(order, payment)
    return OrderNoticeOutput(
        to=[order.customer_email],
        subject=subject,
        body=body,
        outcome=outcome,
        receipt_name=receipt_name,
        receipt_text=receipt_text,
    )


def render_receipt(order: OrderRecord, payment: OrderPayment) -> str:
    """A plain-text receipt for a paid order."""
    charged = payment.charged_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        "收据 / RECEIPT",
        "=" * 40,
        f"收据编号 / Reference : {payment.reference}",
        f"订单号 / Order       : {order.order_no}",
        f"客户 / Customer      : {order.customer_name} <{order.customer_email}>",
        f"付款时间 / Paid at   : {charged}",
        f"付款方式 / Card      : {_card(order)}",
        "-" * 40,
        "商品 / Items:",
        _items(order),
        "-" * 40,
        f"合计 / Total         : {format_amount(payment.amount)} {payment.currency}",
        f"收货地址 / Ship to   : {order.shipping_address}",
        "",
    ]
    return "\n".join(lines)


def order_notice_task(
    warehouse: Warehouse, ledger: PaymentLedger
) -> TaskType[OrderNoticeInput, OrderNoticeOutput]:
    """The ``order_notice`` task type: compose (not send) the customer's e-mail and receipt."""

    def order_notice(ctx: TaskContext, inp: OrderNoticeInput) -> OrderNoticeOutput:
        try:
            order = warehouse.order(inp.order_no)
        except OrderNotFoundError:
            raise PermanentError(f"order {inp.order_no} not found") from None
        except SourceReadError as exc:
            raise RetryableError(str(exc)) from exc
        payment: OrderPayment | None = None
        if inp.payment_id is not None:
            try:
                with ledger.db.session() as session:
                    payment = session.get(OrderPayment, inp.payment_id)
            except SQLAlchemyError as exc:
                raise RetryableError(f"reading payment {inp.payment_id}: {exc}") from exc
            if payment is None or payment.order_no != order.order_no:
                raise PermanentError(f"payment {inp.payment_id} is not a payment of order {order.order_no}")
            if payment.status != inp.outcome:
                raise PermanentError(
                    f"outcome {inp.outcome!r} contradicts payment {payment.id}, which is {payment.status!r}"
                )
        return compose_notice(order, inp.outcome, payment)

    return TaskType(
        name=TASK_NAME,
        input_model=OrderNoticeInput,
        output_model=OrderNoticeOutput,
        fn=order_notice,
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=1.0),
        timeout_seconds=30.0,
        description="Compose the customer's e-mail and receipt for an order's outcome from the database.",
    )
