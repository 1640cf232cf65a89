"""Recording transitions: every state change is one append-only row."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from gpt2_agent.store.base import utcnow
from gpt2_agent.store.engine_tables import TaskEvent

SYSTEM_ACTOR = "system"


# One statement object for every event: its compiled form and cache key are reused.
_INSERT = insert(TaskEvent)


def record(
    session: Session,
    *,
    actor: str | None,
    to_state: str,
    from_state: str | None = None,
    task_id: int | None = None,
    run_id: int | None = None,
    reason: str = "",
    attempt: int | None = None,
) -> None:
    """Append one event row in the caller's transaction.

    Goes straight to the connection (no ORM bookkeeping): events are written, never updated.
    """
    session.connection().execute(
        _INSERT,
        {
            "task_id": task_id,
            "run_id": run_id,
            "at": utcnow(),
            "actor": actor or SYSTEM_ACTOR,
            "from_state": from_state,
            "to_state": to_state,
            "reason": reason[:4000],
            "attempt": attempt,
        },
    )
