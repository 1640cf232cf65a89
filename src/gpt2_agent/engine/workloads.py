"""Small serialisable messages passed between the engine and executors."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel


class Claim(BaseModel):
    """A task claimed by a worker. ``(task_id, worker, attempt)`` is the fence for completing it."""

    kind: Literal["Claim"] = "Claim"
    task_id: int
    type: str
    input: dict[str, Any]
    attempt: int
    max_attempts: int
    worker: str
    idempotency_key: str
    run_id: int | None = None
    step_name: str | None = None
    submitted_by: str | None = None
    deadline_at: dt.datetime | None = None
    started_at: dt.datetime


class ExecuteTask(BaseModel):
    """What a remote executor (Celery) carries: only the id; the truth stays in SQL."""

    kind: Literal["ExecuteTask"] = "ExecuteTask"
    task_id: int
