"""The feedback log: gate decisions joined with what became of them.

Every gate decision is already logged in ``gate_decisions`` (features, action, policy version,
propensity). Its outcomes arrive later and from elsewhere; :class:`FeedbackLog` attaches them as
rows of ``gate_outcomes``:

- ``reviewer``: a person's decision on an escalated order (from the approvals ``feedback`` table,
  matched by workflow run), ``approve`` or ``reject``;
- ``payment``: the charge's result (from ``order_payments``, matched by run), ``paid``,
  ``insufficient_balance`` or ``card_expired``;
- ``chargeback``: the delayed fraud label, ``chargeback`` or ``clear``, recorded through
  :meth:`FeedbackLog.record_outcome` (the demo derives it from the generator's latent truth).

Feedback that names a decision that does not exist is refused: the row goes to
``gate_outcome_rejects`` (counted, kept for inspection) and is never joined.

A joined decision's cost follows the cost model once enough is known: an approval costs a
chargeback if one came (nothing if the payment failed: nothing was shipped), a rejection costs a
lost sale if the order turns out to have been good, an escalation costs the review plus the
reviewer's own mistake if their decision turns out wrong. Where the truth is not known yet the
cost is unknown (``None``) and the decision waits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import String, and_, cast, exists, func, select
from sqlalchemy.exc import IntegrityError

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.features import ACTIONS, APPROVE, ESCALATE, OBS_DIM, REJECT, observe
from gpt2_agent.rl.ope import LoggedData
from gpt2_agent.store import Database
from gpt2_agent.store.feedback_tables import ApprovalFeedback, GateDecisionLog
from gpt2_agent.store.payments_tables import OrderPayment
from gpt2_agent.store.rl_tables import GateOutcome, GateOutcomeReject

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

OUTCOME_VALUES: dict[str, tuple[str, ...]] = {
    "reviewer": ("approve", "reject"),
    "payment": ("paid", "insufficient_balance", "card_expired"),
    "chargeback": ("chargeback", "clear"),
}


class UnknownDecision(LookupError):
    """Feedback named a gate decision that does not exist; it was counted and not joined."""


class OutcomeError(ValueError):
    """An outcome of an unknown kind or value."""


@dataclass(frozen=True)
class JoinedDecision:
    """A gate decision with the outcomes known so far, and its cost when that is known."""

    id: int
    order_no: str | None
    created_at: dt.datetime
    probability: float
    amount: float
    obs: FloatArray
    action: int
    policy_version: str
    propensity: float
    reviewer: str | None
    payment: str | None
    chargeback: bool | None
    cost: float | None
    revealed: FloatArray  # (3,) costs the outcomes reveal; NaN: unknown

    @property
    def action_name(self) -> str:
        return ACTIONS[self.action]


@dataclass(frozen=True)
class IngestResult:
    """What one :meth:`FeedbackLog.ingest` pass joined and refused."""

    reviewer: int = 0
    payment: int = 0
    rejected: int = 0


def _amount(value: Any) -> float:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return 0.0


class FeedbackLog:
    """Joins gate decisions with their outcomes. Thread-safe (every call is its own transaction).

    :param db: a migrated application database.
    :param costs: the cost model used to cost joined decisions.
    """

    def __init__(self, db: Database, costs: CostModel | None = None) -> None:
        self.db = db
        self.costs = costs or CostModel()

    # --- writing outcomes --------------------------------------------------------------------------

    def record_outcome(
        self,
        kind: str,
        value: str,
        *,
        decision_id: int | None = None,
        idempotency_key: str | None = None,
        source: str | None = None,
        observed_at: dt.datetime | None = None,
    ) -> int:
        """Attach an outcome to the decision named by ``decision_id`` or ``idempotency_key``.

        Recording the same kind twice for a decision keeps the first (idempotent). Raises
        :class:`UnknownDecision` (after counting the refusal) when no such decision exists, and
        :class:`OutcomeError` for an unknown kind or value.
        """
        _check_outcome(kind, value)
        source_id = source or f"{kind}:{decision_id if decision_id is not None else idempotency_key}"
        with self.db.session() as s:
            query = select(GateDecisionLog.id)
            if decision_id is not None:
                query = query.where(GateDecisionLog.id == decision_id)
            elif idempotency_key is not None:
                query = query.where(GateDecisionLog.idempotency_key == idempotency_key)
            else:
                raise OutcomeError("name the decision: decision_id or idempotency_key")
            found = s.scalar(query)
        if found is None:
            self._reject(
                kind,
                "api",
                source_id,
                f"no gate decision {decision_id if decision_id is not None else idempotency_key!r}",
                {"value": value, "decision_id": decision_id, "idempotency_key": idempotency_key},
            )
            raise UnknownDecision(
                f"no gate decision {decision_id if decision_id is not None else idempotency_key!r}; "
                "the outcome was counted as rejected and not joined"
            )
        return self._add(int(found), kind, value, "api", source_id, observed_at)

    def ingest(self) -> IngestResult:
        """Join new reviewer decisions (``feedback``) and payment results (``order_payments``) to
        the gate decisions of the same workflow run. Safe to repeat: each source row once."""
        reviewer = payment = rejected = 0
        with self.db.session() as s:
            fb_rows = s.execute(
                select(
                    ApprovalFeedback.id,
                    ApprovalFeedback.run_id,
                    ApprovalFeedback.decision,
                    ApprovalFeedback.decided_at,
                )
                .where(~_seen(ApprovalFeedback.id, "feedback"))
                .order_by(ApprovalFeedback.id)
            ).all()
            pay_rows = s.execute(
                select(OrderPayment.id, OrderPayment.run_id, OrderPayment.status, OrderPayment.charged_at)
                .where(OrderPayment.run_id.is_not(None), ~_seen(OrderPayment.id, "order_payments"))
                .order_by(OrderPayment.id)
            ).all()
            run_ids = {r.run_id for r in fb_rows} | {r.run_id for r in pay_rows}
            by_run: dict[int, int] = {}
            if run_ids:
                for run_id, latest in s.execute(
                    select(GateDecisionLog.run_id, func.max(GateDecisionLog.id))
                    .where(GateDecisionLog.run_id.in_(run_ids))
                    .group_by(GateDecisionLog.run_id)
                ).all():
                    by_run[int(run_id or 0)] = int(latest or 0)
        for fb_id, run_id, value, at in fb_rows:
            decision = by_run.get(int(run_id or 0))
            if decision is None:
                self._reject(
                    "reviewer", "feedback", str(fb_id), f"run {run_id} has no gate decision", {"value": value}
                )
                rejected += 1
            elif self._add(decision, "reviewer", value, "feedback", str(fb_id), at, quiet=True):
                reviewer += 1
        for pay_id, run_id, value, at in pay_rows:
            decision = by_run.get(int(run_id or 0))
            if decision is None:
                self._reject(
                    "payment",
                    "order_payments",
                    str(pay_id),
                    f"run {run_id} has no gate decision",
                    {"value": value},
                )
                rejected += 1
            elif value in OUTCOME_VALUES["payment"] and self._add(
                decision, "payment", value, "order_payments", str(pay_id), at, quiet=True
            ):
                payment += 1
        if reviewer or payment or rejected:
            log.info(
                "feedback log: joined %d reviews and %d payments, rejected %d", reviewer, payment, rejected
            )
        return IngestResult(reviewer, payment, rejected)

    def _add(
        self,
        decision_id: int,
        kind: str,
        value: str,
        table: str,
        source_id: str,
        observed_at: dt.datetime | None,
        *,
        quiet: bool = False,
    ) -> int:
        try:
            with self.db.session() as s:
                row = GateOutcome(
                    decision_id=decision_id,
                    kind=kind,
                    value=value,
                    source_table=table,
                    source_id=source_id,
                    observed_at=observed_at or dt.datetime.now(dt.UTC),
                )
                s.add(row)
                s.flush()
                return int(row.id)
        except IntegrityError:
            # Already recorded (same decision and kind, or the same source row): the first stands.
            with self.db.session() as s:
                existing = s.scalar(
                    select(GateOutcome.id).where(
                        GateOutcome.decision_id == decision_id, GateOutcome.kind == kind
                    )
                )
            if existing is None and not quiet:
                raise
            return 0 if quiet else int(existing or 0)

    def _reject(self, kind: str, table: str, source_id: str, reason: str, payload: dict[str, Any]) -> None:
        try:
            with self.db.session() as s:
                s.add(
                    GateOutcomeReject(
                        kind=kind, source_table=table, source_id=source_id, reason=reason, payload=payload
                    )
                )
        except IntegrityError:
            pass  # counted once per source row
        log.warning("feedback rejected (%s %s:%s): %s", kind, table, source_id, reason)

    # --- reading -------------------------------------------------------------------------------

    def rejected_count(self) -> int:
        """How many feedback rows named no known decision."""
        with self.db.session() as s:
            return int(s.scalar(select(func.count(GateOutcomeReject.id))) or 0)

    def joined(
        self,
        *,
        since_id: int = 0,
        limit: int | None = None,
        clear_after: dt.timedelta | None = None,
    ) -> list[JoinedDecision]:
        """Decisions after ``since_id`` (oldest first) with their outcomes and costs.

        :param clear_after: treat a paid approval with no chargeback after this long as clear.
        """
        with self.db.session() as s:
            query = select(GateDecisionLog).where(GateDecisionLog.id > since_id).order_by(GateDecisionLog.id)
            if limit is not None:
                query = query.limit(limit)
            rows = list(s.scalars(query))
            outcomes: dict[int, dict[str, str]] = {}
            if rows:
                ids = [r.id for r in rows]
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    for d, kind, value in s.execute(
                        select(GateOutcome.decision_id, GateOutcome.kind, GateOutcome.value).where(
                            GateOutcome.decision_id.in_(chunk)
                        )
                    ).all():
                        outcomes.setdefault(int(d), {})[kind] = value
            now = dt.datetime.now(dt.UTC)
            return [self._join(r, outcomes.get(int(r.id), {}), now, clear_after) for r in rows]

    def _join(
        self, row: GateDecisionLog, known: dict[str, str], now: dt.datetime, clear_after: dt.timedelta | None
    ) -> JoinedDecision:
        f = row.features or {}
        p = float(f.get("probability") or 0.0)
        amount = _amount(f.get("amount"))
        action = ACTIONS.index(row.action) if row.action in ACTIONS else ESCALATE
        reviewer = known.get("reviewer")
        payment = known.get("payment")
        chargeback: bool | None = None
        if "chargeback" in known:
            chargeback = known["chargeback"] == "chargeback"
        elif (
            clear_after is not None
            and payment == "paid"
            and row.created_at is not None
            and now - row.created_at >= clear_after
        ):
            chargeback = False
        cost, revealed = self._cost(action, amount, reviewer, payment, chargeback)
        return JoinedDecision(
            id=int(row.id),
            order_no=row.order_no,
            created_at=row.created_at,
            probability=p,
            amount=amount,
            obs=observe(p, amount, f.get("extra") or {}),
            action=action,
            policy_version=row.policy_version,
            propensity=float(row.propensity),
            reviewer=reviewer,
            payment=payment,
            chargeback=chargeback,
            cost=cost,
            revealed=revealed,
        )

    def _cost(
        self, action: int, amount: float, reviewer: str | None, payment: str | None, chargeback: bool | None
    ) -> tuple[float | None, FloatArray]:
        """Cost of the decision and the costs the outcomes reveal for each action."""
        c = self.costs
        # What the truth is, as far as anyone knows: a chargeback settles it; otherwise a
        # reviewer's rejection is taken as right.
        bad: bool | None = chargeback
        if bad is None and reviewer == "reject":
            bad = True
        approved = action == APPROVE or (action == ESCALATE and reviewer == "approve")
        unpaid = payment is not None and payment != "paid"
        revealed = np.full(3, np.nan)
        if bad is not None:
            revealed[APPROVE] = float(c.wrong_approval(amount)) if bad and not unpaid else 0.0
            revealed[REJECT] = 0.0 if bad else float(c.wrong_rejection(amount))
        elif unpaid and approved:
            revealed[APPROVE] = 0.0  # nothing was shipped, so nothing can be lost
        cost: float | None = None
        if action == APPROVE:
            cost = revealed[APPROVE] if np.isfinite(revealed[APPROVE]) else None
        elif action == REJECT:
            cost = revealed[REJECT] if np.isfinite(revealed[REJECT]) else None
        elif reviewer is not None:
            choice = APPROVE if reviewer == "approve" else REJECT
            if np.isfinite(revealed[choice]):
                cost = c.review_cost + float(revealed[choice])
            elif reviewer == "approve" and payment == "paid":
                cost = None  # the chargeback may still come
            else:
                cost = c.review_cost
        if cost is not None and action == ESCALATE:
            revealed[ESCALATE] = cost
        return (None if cost is None else float(cost)), revealed

    def logged_data(self, decisions: Sequence[JoinedDecision] | None = None, **kwargs: Any) -> LoggedData:
        """Decisions with a known cost, as off-policy evaluation data."""
        rows = [
            d for d in (decisions if decisions is not None else self.joined(**kwargs)) if d.cost is not None
        ]
        n = len(rows)
        return LoggedData(
            obs=np.asarray([d.obs for d in rows], dtype=np.float64).reshape(n, OBS_DIM),
            probability=np.asarray([d.probability for d in rows], dtype=np.float64),
            amount=np.asarray([d.amount for d in rows], dtype=np.float64),
            action=np.asarray([d.action for d in rows], dtype=np.int64),
            propensity=np.asarray([d.propensity for d in rows], dtype=np.float64),
            cost=np.asarray([d.cost for d in rows], dtype=np.float64),
            revealed=np.asarray([d.revealed for d in rows], dtype=np.float64).reshape(n, 3),
            keys=tuple(str(d.id) for d in rows),
        )

    def reviewer_examples(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """People's decisions on order approvals as labelled texts (``text``, ``label``, ``key``),
        oldest first: the data of imitation retraining. Rows without the model's text are skipped."""
        with self.db.session() as s:
            query = select(ApprovalFeedback).order_by(ApprovalFeedback.id)
            if limit is not None:
                query = query.limit(limit)
            out = []
            for row in s.scalars(query):
                text = (row.features or {}).get("text")
                if not text or row.decision not in ("approve", "reject"):
                    continue
                out.append(
                    {"text": str(text), "label": row.decision, "key": row.order_no or f"feedback-{row.id}"}
                )
            return out


def _seen(column: Any, table: str) -> Any:
    """SQL: the source row was already joined or rejected."""
    as_text = cast(column, String(200))
    joined = exists().where(and_(GateOutcome.source_table == table, GateOutcome.source_id == as_text))
    refused = exists().where(
        and_(GateOutcomeReject.source_table == table, GateOutcomeReject.source_id == as_text)
    )
    return joined | refused


def _check_outcome(kind: str, value: str) -> None:
    allowed = OUTCOME_VALUES.get(kind)
    if allowed is None:
        raise OutcomeError(f"unknown outcome kind {kind!r}; use one of {sorted(OUTCOME_VALUES)}")
    if value not in allowed:
        raise OutcomeError(f"outcome {kind} must be one of {list(allowed)} (got {value!r})")


__all__ = [
    "OUTCOME_VALUES",
    "FeedbackLog",
    "IngestResult",
    "JoinedDecision",
    "OutcomeError",
    "UnknownDecision",
]
