"""Approvals feedback: every human decision on an order approval is stored for retraining.

:func:`install_feedback` adds a decision listener to the engine. The engine calls it inside the
transaction that records the decision, so the decision and its feedback row commit together or
not at all. An approval counts as an order approval when its run has an ``order_audit`` step
before it; the row keeps what the model saw and said (text, tabular features, recommendation,
probability, model version), what the gate did, and what the person decided, when, and why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpt2_agent.store.engine_tables import Approval, WorkflowRun
from gpt2_agent.store.feedback_tables import ApprovalFeedback

if TYPE_CHECKING:
    from gpt2_agent.engine.core import Engine

log = logging.getLogger(__name__)

AUDIT_TASK = "order_audit"
GATE_TASK = "automation_gate"


def _step_output(run: WorkflowRun, uses: str, before: str) -> dict[str, Any] | None:
    """Output of the last step that ``uses`` the task type and comes before step ``before``."""
    found: dict[str, Any] | None = None
    for step in (run.definition or {}).get("steps", []):
        if step.get("name") == before:
            break
        if step.get("uses") == uses:
            entry = (run.context or {}).get(step.get("name"), {})
            output = entry.get("output") if isinstance(entry, dict) else None
            if isinstance(output, dict):
                found = output
    return found


class FeedbackRecorder:
    """The decision listener: ``(session, approval, run)`` -> one ``feedback`` row."""

    def __call__(self, session: Session, approval: Approval, run: WorkflowRun) -> None:
        audit = _step_output(run, AUDIT_TASK, approval.step_name)
        if audit is None:
            return  # not an order approval
        gate = _step_output(run, GATE_TASK, approval.step_name) or {}
        order = audit.get("order") or {}
        decision = "approve" if approval.status == "approved" else "reject"
        session.add(
            ApprovalFeedback(
                approval_id=approval.id,
                run_id=run.id,
                workflow=run.workflow,
                step_name=approval.step_name,
                order_no=audit.get("order_no") or order.get("order_no"),
                model=audit.get("model"),
                model_version=audit.get("model_version"),
                features={
                    "text": audit.get("text"),
                    "tabular": audit.get("features") or {},
                    "order": order,
                    "reasons": audit.get("reasons") or [],
                },
                recommendation=audit.get("decision"),
                probability=audit.get("probability"),
                gate_action=gate.get("action"),
                decision=decision,
                decided_by=approval.decided_by or "",
                decided_at=approval.decided_at,
                comment=approval.comment,
            )
        )
        log.info("feedback: %s decided %s on order %s", approval.decided_by, decision, audit.get("order_no"))


def install_feedback(engine: Engine) -> None:
    """Store every decision on an order approval as feedback (idempotent: installs once)."""
    if not any(isinstance(listener, FeedbackRecorder) for listener in engine.decision_listeners):
        engine.decision_listeners.append(FeedbackRecorder())


def list_feedback(
    session: Session, *, order_no: str | None = None, limit: int = 1000
) -> list[ApprovalFeedback]:
    """Feedback rows, oldest first (for retraining jobs and tests)."""
    query = select(ApprovalFeedback).order_by(ApprovalFeedback.id).limit(limit)
    if order_no is not None:
        query = query.where(ApprovalFeedback.order_no == order_no)
    return list(session.scalars(query))
