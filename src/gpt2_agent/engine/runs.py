"""Advancing workflow runs, inside the caller's transaction.

``advance`` walks from ``run.current_step``: it skips steps whose ``when`` is false, parks the
run on an approval step, queues the next task step, or finishes the run. Because it runs in the
same transaction that completed the previous step, a crash can never leave a run between steps.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from gpt2_agent.engine import events
from gpt2_agent.engine.errors import InvalidInput, UnknownTaskType
from gpt2_agent.engine.events import Target
from gpt2_agent.engine.expressions import ExpressionError, evaluate, render
from gpt2_agent.engine.handlers import HandlerRegistry
from gpt2_agent.engine.states import (
    APPROVAL_TASK_TYPE,
    TERMINAL_TASK_STATES,
    ApprovalState,
    RunState,
    TaskState,
)
from gpt2_agent.engine.workflows import StepDef, WorkflowDef
from gpt2_agent.store.base import utcnow
from gpt2_agent.store.engine_tables import Approval, Task, WorkflowRun

_DEFINITIONS: dict[str, WorkflowDef] = {}

# Core insert (no unit of work): a queued step is written once and then only updated by statement.
_INSERT_TASK = insert(Task)
_INSERT_APPROVAL = insert(Approval)


class QueuedTask(NamedTuple):
    """What a worker needs to claim a queued task (also the column order ``claim`` selects)."""

    id: int
    type: str
    queue: str
    input: dict[str, Any]
    attempt: int
    max_attempts: int
    timeout_seconds: float | None
    idempotency_key: str
    run_id: int | None
    step_name: str | None
    submitted_by: str | None


@dataclass(slots=True)
class RunRecord:
    """A run read by statement, with the fields advancing it reads and writes.

    The hot path (completing a step) reads and writes runs by statement: building a mapped
    ``WorkflowRun`` and flushing it costs more than the step's own database work.
    """

    id: int
    workflow: str
    status: str
    input: dict[str, Any]
    context: dict[str, Any]
    definition: dict[str, Any]
    current_step: int
    submitted_by: str | None
    output: dict[str, Any] | None = None
    error: str | None = None
    finished_at: dt.datetime | None = None


# Everything here works on a mapped run (flushed by its session) or a record (written by the caller).
Run = WorkflowRun | RunRecord

# Given a task about to be queued, the columns that claim it at once (a worker chaining to the
# next step of its run), or None to leave it queued for anyone.
ClaimAtInsert = Callable[[QueuedTask], Mapping[str, Any] | None]


def definition(run: Run) -> WorkflowDef:
    """The run's own snapshot of its workflow (edits to the file do not affect running runs).

    Parsed snapshots are cached by their canonical JSON: validating one costs more than a step.
    """
    key = json.dumps(run.definition, sort_keys=True)
    cached = _DEFINITIONS.get(key)
    if cached is None:
        if len(_DEFINITIONS) > 256:
            _DEFINITIONS.clear()
        cached = _DEFINITIONS[key] = WorkflowDef.model_validate(run.definition)
    return cached


def step_def(run: Run, name: str | None) -> StepDef | None:
    if name is None:
        return None
    for step in definition(run).steps:
        if step.name == name:
            return step
    return None


def scope(run: Run) -> dict[str, Any]:
    """What expressions see: ``input``, ``steps.<name>.output`` and ``run`` metadata."""
    return {
        "input": run.input,
        "steps": run.context or {},
        "run": {"id": run.id, "workflow": run.workflow, "submitted_by": run.submitted_by},
    }


def record_step_output(run: Run, step: str, output: dict[str, Any] | None, skipped: bool = False) -> None:
    # Reassign (not mutate) so SQLAlchemy sees the JSON change.
    context = dict(run.context or {})
    context[step] = {"output": output, "skipped": skipped}
    run.context = context


def advance(
    session: Target,
    run: Run,
    handlers: HandlerRegistry,
    *,
    actor: str | None,
    claim: ClaimAtInsert | None = None,
) -> list[QueuedTask]:
    """Move the run forward to its next waiting point; returns the newly queued tasks.

    Changes ``run`` in place; the caller writes it (a session-bound run is flushed at commit).
    With ``claim``, a queued task may be inserted already claimed (see :data:`ClaimAtInsert`).
    """
    defn = definition(run)
    while run.current_step < len(defn.steps):
        index = run.current_step
        step = defn.steps[index]
        try:
            if step.when is not None and not evaluate(step.when, scope(run)):
                record_step_output(run, step.name, None, skipped=True)
                events.record(
                    session,
                    actor=actor,
                    from_state=run.status,
                    to_state=run.status,
                    run_id=run.id,
                    reason=f"skipped step {step.name!r}: condition is false",
                )
                run.current_step += 1
                continue
            if step.type == "approval":
                _park_on_approval(session, run, step, index, actor)
                return []
            return [_queue_step(session, run, step, index, handlers, actor, claim)]
        except (ExpressionError, InvalidInput, UnknownTaskType) as exc:
            finish(session, run, RunState.FAILED, actor=actor, reason=f"step {step.name!r}: {exc}")
            return []
    try:
        output = render(defn.output, scope(run)) if defn.output else {}
    except ExpressionError as exc:
        finish(session, run, RunState.FAILED, actor=actor, reason=f"output: {exc}")
        return []
    run.output = output
    finish(session, run, RunState.SUCCEEDED, actor=actor, reason="all steps done")
    return []


def _queue_step(
    session: Target,
    run: Run,
    step: StepDef,
    index: int,
    handlers: HandlerRegistry,
    actor: str | None,
    claim: ClaimAtInsert | None,
) -> QueuedTask:
    assert step.uses is not None
    task_type = handlers.get(step.uses)
    data = task_type.parse_input(render(step.with_, scope(run))).model_dump(mode="json")
    queued = QueuedTask(
        id=0,
        type=step.uses,
        queue=task_type.queue,
        input=data,
        attempt=0,
        max_attempts=step.retry.max_attempts if step.retry else task_type.retry.max_attempts,
        timeout_seconds=step.timeout_seconds or task_type.timeout_seconds,
        # Stable across retries and restarts: actions pass it to external systems.
        idempotency_key=f"run:{run.id}:{step.name}",
        run_id=run.id,
        step_name=step.name,
        submitted_by=run.submitted_by,
    )
    values = queued._asdict()
    del values["id"]
    values.update(status=TaskState.QUEUED, step_index=index, run_at=utcnow())
    claimed = claim(queued) if claim is not None else None
    if claimed:
        # One insert instead of insert + claim; nobody else could see the row in between anyway.
        values.update(claimed)
    key = events.connection(session).execute(_INSERT_TASK, values).inserted_primary_key
    assert key is not None
    queued = queued._replace(id=key[0])
    events.record(
        session,
        actor=actor,
        to_state=TaskState.QUEUED,
        task_id=queued.id,
        run_id=run.id,
        reason=f"step {step.name!r} queued",
    )
    if run.status == RunState.WAITING_APPROVAL:
        run.status = RunState.RUNNING
    return queued


def _park_on_approval(session: Target, run: Run, step: StepDef, index: int, actor: str | None) -> None:
    s = scope(run)
    title = str(render(step.title, s)) if step.title else f"{run.workflow} #{run.id}: {step.name}"
    context = render(step.context, s) if step.context else {"steps": run.context, "input": run.input}
    conn = events.connection(session)
    key = conn.execute(
        _INSERT_TASK,
        {
            "type": APPROVAL_TASK_TYPE,
            "queue": "approvals",
            "status": TaskState.WAITING_APPROVAL,
            "input": {"title": title},
            "run_id": run.id,
            "step_name": step.name,
            "step_index": index,
            "idempotency_key": f"run:{run.id}:{step.name}",
            "max_attempts": 1,
            "submitted_by": run.submitted_by,
        },
    ).inserted_primary_key
    assert key is not None
    task_id = key[0]
    conn.execute(
        _INSERT_APPROVAL,
        {
            "run_id": run.id,
            "task_id": task_id,
            "step_name": step.name,
            "status": ApprovalState.PENDING,
            "title": title,
            "context": context,
            "submitted_by": run.submitted_by,
        },
    )
    events.record(
        session,
        actor=actor,
        to_state=TaskState.WAITING_APPROVAL,
        task_id=task_id,
        run_id=run.id,
        reason=f"waiting for a decision on {step.name!r}",
    )
    previous = run.status
    run.status = RunState.WAITING_APPROVAL
    events.record(
        session,
        actor=actor,
        from_state=previous,
        to_state=RunState.WAITING_APPROVAL,
        run_id=run.id,
        reason=f"approval step {step.name!r}",
    )


def finish(session: Target, run: Run, state: RunState, *, actor: str | None, reason: str) -> None:
    previous = run.status
    run.status = state
    run.finished_at = utcnow()
    if state in (RunState.FAILED, RunState.REJECTED):
        run.error = reason[:8000]
    events.record(session, actor=actor, from_state=previous, to_state=state, run_id=run.id, reason=reason)


def cancel_task(session: Session, task: Task, *, actor: str | None, reason: str) -> None:
    previous = task.status
    task.status = TaskState.CANCELLED
    task.finished_at = utcnow()
    task.lease_owner = None  # fences out the worker, if one is running it
    task.lease_until = None
    events.record(
        session,
        actor=actor,
        from_state=previous,
        to_state=TaskState.CANCELLED,
        task_id=task.id,
        run_id=task.run_id,
        reason=reason,
    )
    if task.type == APPROVAL_TASK_TYPE:
        approval = session.scalars(select(Approval).where(Approval.task_id == task.id)).first()
        if approval is not None and approval.status == ApprovalState.PENDING:
            approval.status = ApprovalState.CANCELLED
            approval.decided_by = actor
            approval.decided_at = utcnow()


def cancel(session: Session, run: WorkflowRun, *, actor: str | None) -> None:
    """Cancel a run and whatever of it is still open."""
    open_tasks = session.scalars(
        select(Task).where(Task.run_id == run.id, Task.status.not_in([s.value for s in TERMINAL_TASK_STATES]))
    )
    for task in open_tasks:
        cancel_task(session, task, actor=actor, reason=f"run {run.id} cancelled")
    finish(session, run, RunState.CANCELLED, actor=actor, reason="cancelled on request")
