"""Tables of the learned gate: outcomes joined to gate decisions, and feedback that matched none.

``gate_outcomes`` holds what became of a logged gate decision (``gate_decisions``): the
reviewer's decision on an escalated order, the payment's result, and the chargeback label that
arrives weeks later (``chargeback`` or ``clear``). One outcome of each kind per decision; the
source row it was copied from (``source_table``, ``source_id``) makes ingestion idempotent.
``gate_outcome_rejects`` counts feedback that named no known decision: it is kept for
inspection and never joined.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gpt2_agent.store.base import Base, UTCDateTime, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class GateOutcome(Base):
    """One outcome of a gate decision: ``reviewer`` (approve | reject), ``payment`` (paid |
    insufficient_balance | card_expired) or ``chargeback`` (chargeback | clear)."""

    __tablename__ = "gate_outcomes"
    __table_args__ = (
        UniqueConstraint("decision_id", "kind", name="uq_gate_outcomes_decision_id_kind"),
        UniqueConstraint("source_table", "source_id", name="uq_gate_outcomes_source_table_source_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("gate_decisions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(32))
    source_table: Mapped[str] = mapped_column(String(64))  # feedback | order_payments | api
    source_id: Mapped[str] = mapped_column(String(200))
    observed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class GateOutcomeReject(Base):
    """Feedback for a decision that does not exist (counted, never joined)."""

    __tablename__ = "gate_outcome_rejects"
    __table_args__ = (
        UniqueConstraint("source_table", "source_id", name="uq_gate_outcome_rejects_source_table_source_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    source_table: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
