"""Dashboard numbers of the gate: which policy decides, how much it automates, what it costs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.feedback_log import FeedbackLog
from gpt2_agent.store import Database
from gpt2_agent.store.feedback_tables import GateDecisionLog


def gate_stats(
    db: Database,
    costs: CostModel | None = None,
    *,
    since: dt.datetime | None = None,
    recent: int = 5000,
    ingest: bool = False,
) -> dict[str, Any]:
    """The gate's current policy, decisions by action, automation rate and cost per order.

    :param costs: the cost model (``CostModel.from_settings(settings)``); default: its defaults.
    :param since: count decisions from this time on (default: all).
    :param recent: the cost per order is computed over the last ``recent`` decisions whose
        outcome is known.
    :param ingest: first join new reviewer decisions and payment results to their decisions
        (:meth:`~gpt2_agent.rl.feedback_log.FeedbackLog.ingest`; idempotent, but it writes).

    Returns ``{"policy", "decisions", "by_action", "automation_rate", "cost_per_order",
    "known_outcomes", "by_policy", "rejected_feedback"}``; ``cost_per_order`` is None until some
    outcome is known.
    """
    log = FeedbackLog(db, costs)
    if ingest:
        log.ingest()
    with db.session() as s:
        query = select(GateDecisionLog.action, func.count(GateDecisionLog.id)).group_by(
            GateDecisionLog.action
        )
        by_policy_q = select(GateDecisionLog.policy_version, func.count(GateDecisionLog.id)).group_by(
            GateDecisionLog.policy_version
        )
        if since is not None:
            query = query.where(GateDecisionLog.created_at >= since)
            by_policy_q = by_policy_q.where(GateDecisionLog.created_at >= since)
        by_action = {str(a): int(n) for a, n in s.execute(query).all()}
        by_policy = {str(p): int(n) for p, n in s.execute(by_policy_q).all()}
        last = s.execute(
            select(GateDecisionLog.id, GateDecisionLog.policy_version)
            .order_by(GateDecisionLog.id.desc())
            .limit(1)
        ).first()
    total = sum(by_action.values())
    automated = by_action.get("auto_approve", 0) + by_action.get("auto_reject", 0)
    since_id = max(int(last[0]) - recent, 0) if last is not None else 0
    joined = [d for d in log.joined(since_id=since_id) if since is None or d.created_at >= since]
    known = [d.cost for d in joined if d.cost is not None]
    return {
        "policy": None if last is None else str(last[1]),
        "decisions": total,
        "by_action": {a: by_action.get(a, 0) for a in ("auto_approve", "auto_reject", "escalate")},
        "automation_rate": (automated / total) if total else None,
        "cost_per_order": (sum(known) / len(known)) if known else None,
        "known_outcomes": len(known),
        "by_policy": by_policy,
        "rejected_feedback": log.rejected_count(),
    }


__all__ = ["gate_stats"]
