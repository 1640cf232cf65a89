"""The automation gate: decide whether an audited order is approved, rejected or shown to a person.

:class:`AutomationGate` is the interface; :class:`ThresholdGate` is the first policy (thresholds
from the settings, per workflow). A learned policy replaces it through the same protocol and
reports the probability with which it chose its action (``propensity``), which off-policy
evaluation of the next policy needs. Whatever the policy, :func:`enforce_hard_rules` is applied
afterwards: nothing above the amount limit is ever approved without a person.

The ``automation_gate`` task type runs a gate inside a workflow and logs every decision
(features, action, reason, policy version, propensity) in ``gate_decisions``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gpt2_agent.actions.money import Amount, format_amount
from gpt2_agent.config import Settings
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType
from gpt2_agent.store import Database
from gpt2_agent.store.feedback_tables import GateDecisionLog

log = logging.getLogger(__name__)

TASK_NAME = "automation_gate"
GateAction = Literal["auto_approve", "auto_reject", "escalate"]
GATE_ACTIONS: tuple[str, ...] = ("auto_approve", "auto_reject", "escalate")


@dataclass(frozen=True)
class GateFeatures:
    """What a gate sees about one audited order."""

    probability: float  # the audit model's probability of "approve"
    amount: Decimal
    currency: str = "CNY"
    recommendation: str | None = None  # the model's decision: approve | reject
    order_no: str | None = None
    workflow: str | None = None
    model_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the order's serialized fields

    def as_json(self) -> dict[str, Any]:
        """Plain JSON values (the amount as a decimal string) for the decision log."""
        return {
            "probability": self.probability,
            "amount": format_amount(self.amount),
            "currency": self.currency,
            "recommendation": self.recommendation,
            "order_no": self.order_no,
            "workflow": self.workflow,
            "model_version": self.model_version,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer. ``propensity`` is the probability the policy gave the chosen action."""

    action: GateAction
    reason: str
    policy_version: str
    propensity: float = 1.0


@runtime_checkable
class AutomationGate(Protocol):
    """A policy that decides what happens to an audited order."""

    def decide(self, features: GateFeatures) -> GateDecision:
        """Choose auto_approve, auto_reject or escalate for one order."""
        ...


THRESHOLD_KEYS = ("auto_approve_min_probability", "auto_reject_max_probability", "auto_approve_max_amount")


class ThresholdGate:
    """Auto-approve when ``probability >= approve_min`` and ``amount <= max_amount``; auto-reject
    when ``probability <= reject_max``; escalate otherwise. Deterministic, so propensity is 1.

    :param approve_min: lowest probability of approve that is approved without a person.
    :param reject_max: highest probability of approve that is rejected without a person.
    :param max_amount: largest amount approved without a person (never exceeded).
    """

    def __init__(self, approve_min: float, reject_max: float, max_amount: Decimal) -> None:
        if not 0.0 <= reject_max < approve_min <= 1.0:
            raise ValueError(
                "gate thresholds need 0 <= auto_reject_max_probability < auto_approve_min_probability <= 1 "
                f"(got {reject_max} and {approve_min})"
            )
        if not max_amount.is_finite() or max_amount < 0:
            raise ValueError(f"auto_approve_max_amount must be a non-negative amount (got {max_amount})")
        self.approve_min = float(approve_min)
        self.reject_max = float(reject_max)
        self.max_amount = max_amount
        params = json.dumps([self.approve_min, self.reject_max, format_amount(max_amount)])
        self.policy_version = f"thresholds-{hashlib.sha256(params.encode()).hexdigest()[:10]}"

    @classmethod
    def from_settings(cls, settings: Settings, workflow: str | None = None) -> ThresholdGate:
        """The thresholds in ``settings``, with ``gate_workflow_overrides[workflow]`` applied."""
        values: dict[str, Decimal] = {
            "auto_approve_min_probability": Decimal(str(settings.gate_auto_approve_min_probability)),
            "auto_reject_max_probability": Decimal(str(settings.gate_auto_reject_max_probability)),
            "auto_approve_max_amount": settings.gate_auto_approve_max_amount,
        }
        overrides = settings.gate_workflow_overrides.get(workflow or "", {})
        unknown = sorted(set(overrides) - set(THRESHOLD_KEYS))
        if unknown:
            raise ValueError(
                f"gate_workflow_overrides[{workflow!r}]: unknown keys {unknown}; use {list(THRESHOLD_KEYS)}"
            )
        values.update(overrides)
        return cls(
            float(values["auto_approve_min_probability"]),
            float(values["auto_reject_max_probability"]),
            values["auto_approve_max_amount"],
        )

    def decide(self, features: GateFeatures) -> GateDecision:
        """Apply the thresholds."""
        p = features.probability
        amount = f"{format_amount(features.amount)} {features.currency}"
        if p >= self.approve_min and features.amount <= self.max_amount:
            reason = f"probability {p:.3f} >= {self.approve_min:g} and amount {amount} within the limit"
            return GateDecision("auto_approve", reason, self.policy_version)
        if p <= self.reject_max:
            return GateDecision(
                "auto_reject", f"probability {p:.3f} <= {self.reject_max:g}", self.policy_version
            )
        if p >= self.approve_min:
            reason = f"amount {amount} is above the auto-approve limit {format_amount(self.max_amount)}"
        else:
            reason = f"probability {p:.3f} is between {self.reject_max:g} and {self.approve_min:g}"
        return GateDecision("escalate", reason, self.policy_version)


def enforce_hard_rules(decision: GateDecision, features: GateFeatures, max_amount: Decimal) -> GateDecision:
    """Turn an auto-approval above ``max_amount`` into an escalation, whatever the policy said.

    A learned policy may explore; money above the limit still needs a person.
    """
    if decision.action not in GATE_ACTIONS:
        raise ValueError(f"gate returned unknown action {decision.action!r}")
    if decision.action == "auto_approve" and features.amount > max_amount:
        return replace(
            decision,
            action="escalate",
            reason=(
                f"amount {format_amount(features.amount)} {features.currency} is above the auto-approve "
                f"limit {format_amount(max_amount)} (policy wanted auto_approve: {decision.reason})"
            ),
        )
    return decision


# --- the task type --------------------------------------------------------------------------------


class AutomationGateInput(BaseModel):
    """The audit's result, as the workflow passes it on."""

    model_config = ConfigDict(extra="forbid")

    probability: float = Field(ge=0.0, le=1.0)
    amount: Amount
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    recommendation: Literal["approve", "reject"] | None = None
    order_no: str | None = Field(default=None, pattern=r"^[0-9]{1,12}$")
    workflow: str | None = Field(default=None, max_length=200)
    model_version: int | None = None
    features: dict[str, Any] = Field(default_factory=dict)


class AutomationGateOutput(BaseModel):
    """What the gate decided; ``decision_id`` is the row in ``gate_decisions``."""

    action: GateAction
    reason: str
    policy_version: str
    propensity: float
    decision_id: int


class GateService:
    """Chooses the gate per workflow and logs every decision once per idempotency key."""

    def __init__(self, settings: Settings, db: Database, gate: AutomationGate | None = None) -> None:
        self.settings = settings
        self.db = db
        self.gate = gate
        self._by_workflow: dict[str | None, ThresholdGate] = {}

    def _policy(self, workflow: str | None) -> tuple[AutomationGate, Decimal]:
        limits = self._by_workflow.get(workflow)
        if limits is None:
            limits = self._by_workflow[workflow] = ThresholdGate.from_settings(self.settings, workflow)
        return (self.gate or limits), limits.max_amount

    def decide(
        self, features: GateFeatures, *, key: str, run_id: int | None = None, task_id: int | None = None
    ) -> tuple[GateDecision, int]:
        """Decide and log; a key seen before returns the logged decision, so a retried step (or a
        stochastic policy) never decides the same order twice."""
        existing = self._lookup(key)
        if existing is not None:
            return existing
        gate, max_amount = self._policy(features.workflow)
        decision = enforce_hard_rules(gate.decide(features), features, max_amount)
        try:
            with self.db.session() as session:
                row = GateDecisionLog(
                    idempotency_key=key,
                    run_id=run_id,
                    task_id=task_id,
                    workflow=features.workflow,
                    order_no=features.order_no,
                    features=features.as_json(),
                    action=decision.action,
                    reason=decision.reason,
                    policy_version=decision.policy_version,
                    propensity=float(decision.propensity),
                )
                session.add(row)
                session.flush()
                row_id = int(row.id)
        except IntegrityError:
            # A concurrent attempt with the same key logged first; its decision stands.
            found = self._lookup(key)
            if found is None:
                raise
            return found
        log.info("gate %s for order %s: %s", decision.action, features.order_no, decision.reason)
        return decision, row_id

    def _lookup(self, key: str) -> tuple[GateDecision, int] | None:
        with self.db.session() as session:
            row = session.scalars(
                select(GateDecisionLog).where(GateDecisionLog.idempotency_key == key)
            ).first()
            if row is None:
                return None
            action: Any = row.action
            return GateDecision(action, row.reason, row.policy_version, row.propensity), int(row.id)


def automation_gate_task(service: GateService) -> TaskType[AutomationGateInput, AutomationGateOutput]:
    """The ``automation_gate`` task type."""

    def automation_gate(ctx: TaskContext, inp: AutomationGateInput) -> AutomationGateOutput:
        features = GateFeatures(
            probability=inp.probability,
            amount=inp.amount,
            currency=inp.currency,
            recommendation=inp.recommendation,
            order_no=inp.order_no,
            workflow=inp.workflow,
            model_version=inp.model_version,
            extra=inp.features,
        )
        key = ctx.idempotency_key or f"task:{ctx.task_id}"
        decision, row_id = service.decide(features, key=key, run_id=ctx.run_id, task_id=ctx.task_id)
        return AutomationGateOutput(
            action=decision.action,
            reason=decision.reason,
            policy_version=decision.policy_version,
            propensity=decision.propensity,
            decision_id=row_id,
        )

    return TaskType(
        name=TASK_NAME,
        input_model=AutomationGateInput,
        output_model=AutomationGateOutput,
        fn=automation_gate,
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=1.0),
        timeout_seconds=30.0,
        description="Decide auto-approve, auto-reject or escalate for an audited order, and log it.",
    )
