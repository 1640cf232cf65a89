"""Numbers for the dashboard: counts by state and throughput over the last hour."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from fastapi import APIRouter
from pydantic import BaseModel

from gpt2_agent.api.deps import ApproverDep, EngineDep
from gpt2_agent.store.base import utcnow

router = APIRouter(tags=["stats"])


class ThroughputPoint(BaseModel):
    minute: dt.datetime
    succeeded: int
    failed: int


class StatsOut(BaseModel):
    tasks: dict[str, int]
    runs: dict[str, int]
    throughput: list[ThroughputPoint]


@router.get("/stats", response_model=StatsOut)
def read_stats(engine: EngineDep, _: ApproverDep) -> StatsOut:
    """Tasks and runs by state, and tasks finished per minute over the last hour."""
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
    return StatsOut(tasks=dict(tasks), runs=engine.run_state_counts(), throughput=points)
