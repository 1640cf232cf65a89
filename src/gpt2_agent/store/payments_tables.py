"""Tables of the order payments: the application's payment ledger.

One row per charge the ``order_payment`` action made, keyed by the step's idempotency key
(``run:<id>:<step>``). The key is UNIQUE, so a retried step can never record a second charge; the
gateway itself keeps its own ledger under the same key, which is what makes the charge happen once.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gpt2_agent.store.base import Base, UTCDateTime, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Exact on PostgreSQL; SQLite stores REAL, which round-trips every two-decimal amount below 10^12.
Money = Numeric(14, 2, asdecimal=True)


class OrderPayment(Base):
    """The outcome of one charge: ``paid``, ``insufficient_balance`` or ``card_expired``."""

    __tablename__ = "order_payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("workflow_runs.id"), nullable=True, index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), nullable=True)
    order_no: Mapped[str] = mapped_column(String(16), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    gateway: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str] = mapped_column(String(64))  # the gateway's charge reference
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    charged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
