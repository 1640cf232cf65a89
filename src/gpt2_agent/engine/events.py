"""Recording transitions: every state change is one append-only row."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from gpt2_agent.store.base import utcnow
from gpt2_agent.store.engine_tables import TaskEvent

SYSTEM_ACTOR = "system"

# Where a transition is written: an ORM session, or a bare connection on the hot path.
Target = Session | Connection

# Where a transaction collects its events while batching (see :func:`batched`).
_PENDING = "gpt2_agent.engine.events"

# One statement object for every event: its compiled form and cache key are reused.
_INSERT = insert(TaskEvent)


def connection(target: Target) -> Connection:
    """The connection (and so the transaction) behind ``target``."""
    return target.connection() if isinstance(target, Session) else target


def record(
    target: Target,
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
    Inside :func:`batched` (on the same ``target``) the row is written when the batch closes,
    still in this transaction.
    """
    row = {
        "task_id": task_id,
        "run_id": run_id,
        "at": utcnow(),
        "actor": actor or SYSTEM_ACTOR,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason[:4000],
        "attempt": attempt,
    }
    pending: list[dict[str, Any]] | None = target.info.get(_PENDING)
    if pending is not None:
        pending.append(row)
    else:
        connection(target).execute(_INSERT, row)


@contextlib.contextmanager
def batched(target: Target) -> Iterator[None]:
    """Collect the events recorded inside the block and insert them with one statement at its end.

    A transition writes several events (completed, next step queued, claimed); one multi-row
    insert costs about as much as one row. Rows keep their order, so ids keep the timeline's
    order. On an exception nothing is written (the transaction rolls back anyway).
    """
    if _PENDING in target.info:  # already batching: the outer block writes them
        yield
        return
    pending: list[dict[str, Any]] = []
    target.info[_PENDING] = pending
    try:
        yield
    finally:
        del target.info[_PENDING]
    if pending:
        if isinstance(target, Session):
            target.flush()  # rows the events point to (tasks, runs) must exist first
        connection(target).execute(_INSERT, pending)
