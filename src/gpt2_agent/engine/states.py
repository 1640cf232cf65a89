"""Task and run lifecycles, and the transitions the engine allows."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """State of a task (a standalone task or one step of a run)."""

    QUEUED = "queued"  # waiting for a worker; ``run_at`` says from when (retry backoff)
    RUNNING = "running"  # claimed by a worker that holds an unexpired lease
    WAITING_APPROVAL = "waiting_approval"  # an approval step waiting for a person
    SUCCEEDED = "succeeded"  # finished; output stored; never runs again
    FAILED = "failed"  # gave up: permanent error, invalid output, or attempts exhausted
    CANCELLED = "cancelled"  # stopped on request; a late result from its worker is discarded


class RunState(StrEnum):
    """State of a workflow run."""

    QUEUED = "queued"  # created, first step not yet claimed
    RUNNING = "running"  # a step is queued or running
    WAITING_APPROVAL = "waiting_approval"  # parked on an approval step
    SUCCEEDED = "succeeded"  # every step finished or was skipped
    FAILED = "failed"  # a step failed for good
    CANCELLED = "cancelled"  # cancelled on request
    REJECTED = "rejected"  # a person rejected an approval step


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


TERMINAL_TASK_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})
TERMINAL_RUN_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.REJECTED})

TASK_TRANSITIONS: dict[TaskState | None, frozenset[TaskState]] = {
    None: frozenset({TaskState.QUEUED, TaskState.WAITING_APPROVAL, TaskState.RUNNING}),
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.CANCELLED, TaskState.FAILED}),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.QUEUED, TaskState.CANCELLED}
    ),
    TaskState.WAITING_APPROVAL: frozenset({TaskState.SUCCEEDED, TaskState.CANCELLED}),
}

# Task type name reserved for approval steps; no handler runs for it.
APPROVAL_TASK_TYPE = "approval"
