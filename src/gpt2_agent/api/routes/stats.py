"""Numbers for the dashboard: counts by state, throughput over the last hour, and the automation gate."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from gpt2_agent.api.deps import ApproverDep, DbDep, EngineDep, SettingsDep
from gpt2_agent.config import Settings
from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.gate import LearnedGate
from gpt2_agent.rl.stats import gate_stats
from gpt2_agent.store import Database
from gpt2_agent.store.base import utcnow

router = APIRouter(tags=["stats"])

THRESHOLD_POLICY = "threshold"


class ThroughputPoint(BaseModel):
    minute: dt.datetime
    succeeded: int
    failed: int


class GateStatsOut(BaseModel):
    """What the automation gate decides, how much it automates and what that costs."""

    policy: str = Field(
        description=f"the policy deciding now: a policy version ('gate-policy:3') or '{THRESHOLD_POLICY}'"
    )
    last_decision_policy: str | None = Field(description="the policy version of the newest logged decision")
    decisions: int
    by_action: dict[str, int]
    automation_rate: float | None = Field(description="auto-approved plus auto-rejected, over all decisions")
    cost_per_order: float | None = Field(
        description="mean cost of the recent decisions whose outcome is known (None until one is)"
    )
    known_outcomes: int
    by_policy: dict[str, int]
    rejected_feedback: int = Field(description="feedback rows that named no known decision")
    cost_model: dict[str, float]


class StatsOut(BaseModel):
    tasks: dict[str, int]
    runs: dict[str, int]
    throughput: list[ThroughputPoint]
    gate: GateStatsOut


def get_gate(request: Request) -> LearnedGate | None:
    """The server's automation gate, when it has one."""
    gate: LearnedGate | None = getattr(request.app.state, "gate", None)
    return gate


GateDep = Annotated[LearnedGate | None, Depends(get_gate)]


def _gate_stats(db: Database, settings: Settings, gate: LearnedGate | None) -> GateStatsOut:
    costs = CostModel.from_settings(settings)
    # ingest: join reviewers' decisions and payment results first (idempotent), so the cost per
    # order follows the live order flow rather than only outcomes recorded by hand.
    numbers = gate_stats(db, costs, ingest=True)
    # refresh() checks the registry at most once per reload interval, so a promotion or a
    # withdrawn policy shows here as soon as the gate would act on it.
    serving = gate.refresh() if gate is not None else None
    return GateStatsOut(
        policy=serving.name if serving is not None else THRESHOLD_POLICY,
        last_decision_policy=numbers.pop("policy"),
        cost_model=costs.as_dict(),
        **numbers,
    )


@router.get("/stats", response_model=StatsOut)
def read_stats(
    engine: EngineDep, db: DbDep, settings: SettingsDep, gate: GateDep, _: ApproverDep
) -> StatsOut:
    """Tasks and runs by state, tasks finished per minute over the last hour, and the gate's numbers."""
    tasks: Counter[str] = Counter()
    for _type, state, n in engine.state_counts():
        tasks[state] += n
    now = utcnow().replace(second=0, microsecond=0)
    start = now - dt.timedelta(minutes=59)
    buckets = {start + dt.timedelta(minutes=i): [0, 0] for i in range(60)}
    for at, status, n in engine.throughput(start):
        minute = at.replace(second=0, microsecond=0)
        if minute in buckets:
            buckets[minute][0 if status == "succeeded" else 1] += n
    points = [ThroughputPoint(minute=m, succeeded=s, failed=f) for m, (s, f) in buckets.items()]
    return StatsOut(
        tasks=dict(tasks),
        runs=engine.run_state_counts(),
        throughput=points,
        gate=_gate_stats(db, settings, gate),
    )
