"""Tables of the feedback log: automation-gate decisions and people's decisions on approvals.

Both are append-only training data. ``gate_decisions`` is the gate's behaviour log (features,
action, policy version and the propensity of the chosen action, which off-policy evaluation of a
learned gate needs); ``feedback`` holds every human decision on an order approval together with
what the model recommended, for retraining the audit model.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gpt2_agent.store.base import Base, UTCDateTime, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class GateDecisionLog(Base):
    """One decision of the automation gate. ``idempotency_key`` makes a retried step reuse it."""

    __tablename__ = "gate_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("workflow_runs.id"), nullable=True, index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), nullable=True)
    workflow: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    order_no: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(16))  # auto_approve | auto_reject | escalate
    reason: Mapped[str] = mapped_column(Text)
    policy_version: Mapped[str] = mapped_column(String(200))
    propensity: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ApprovalFeedback(Base):
    """A person's decision on an order approval, next to the model's recommendation."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id"), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("workflow_runs.id"), index=True)
    workflow: Mapped[str] = mapped_column(String(200))
    step_name: Mapped[str] = mapped_column(String(200))
    order_no: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)  # what the model read, text included
    recommendation: Mapped[str | None] = mapped_column(String(16), nullable=True)  # approve | reject
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)  # of approve
    gate_action: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
