"""The engine: submission, claims with fenced leases, completion, retries, sweeping, cancellation.

Every state change is committed to SQL together with its event row before anything else
happens; executors only move claims between the database and handler functions. A completed
task is never claimed again, and a worker can complete a task only while it holds the lease it
claimed (``WHERE id=? AND lease_owner=? AND attempt=?``), so late or duplicate workers change
nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpt2_agent.config import Settings
from gpt2_agent.engine import events, idempotency, runs
from gpt2_agent.engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from gpt2_agent.engine.handlers import HandlerRegistry, RetryPolicy
from gpt2_agent.engine.metrics import EngineMetrics
from gpt2_agent.engine.states import (
    APPROVAL_TASK_TYPE,
    TERMINAL_RUN_STATES,
    TERMINAL_TASK_STATES,
    ApprovalState,
    RunState,
    TaskState,
)
from gpt2_agent.engine.workflows import WorkflowRegistry, check_input
from gpt2_agent.engine.workloads import Claim
from gpt2_agent.store import Database
from gpt2_agent.store.base import utcnow
from gpt2_agent.store.engine_tables import Approval, Task, TaskEvent, WorkflowRun

log = logging.getLogger(__name__)

# Hot-path statements (claim, complete, advance), built once and run on the session's connection:
# plain statements skip the ORM unit of work, which costs more than the database work of a step.
_CLAIM_COLUMNS = select(
    Task.id,
    Task.type,
    Task.queue,
    Task.input,
    Task.attempt,
    Task.max_attempts,
    Task.timeout_seconds,
    Task.idempotency_key,
    Task.run_id,
    Task.step_name,
    Task.submitted_by,
)
_READY = _CLAIM_COLUMNS.where(Task.status == TaskState.QUEUED, Task.run_at <= bindparam("b_now"))
_CLAIM_ANY = _READY.order_by(Task.id).limit(bindparam("b_limit"))
_CLAIM_IN_QUEUES = _CLAIM_ANY.where(Task.queue.in_(bindparam("b_queues", expanding=True)))
_CLAIM_ONE = _READY.where(Task.id == bindparam("b_id"))
# SET columns come from the parameter names; ``b_*`` parameters are the WHERE clause.
_TAKE = update(Task).where(Task.id == bindparam("b_id"), Task.status == TaskState.QUEUED)
_START_RUN = update(WorkflowRun).where(
    WorkflowRun.id == bindparam("b_id"), WorkflowRun.status == RunState.QUEUED
)
_COMPLETE = update(Task).where(
    Task.id == bindparam("b_id"),
    Task.status == TaskState.RUNNING,
    Task.lease_owner == bindparam("b_worker"),
    Task.attempt == bindparam("b_attempt"),
)
_LOAD_RUN = select(*(WorkflowRun.__table__.c[f.name] for f in dataclasses.fields(runs.RunRecord))).where(
    WorkflowRun.id == bindparam("b_id")
)
_SAVE_RUN = update(WorkflowRun).where(WorkflowRun.id == bindparam("b_id"))
_INSERT_RUN = insert(WorkflowRun)

DecisionListener = Callable[[Session, Approval, WorkflowRun], None]


@dataclass(frozen=True)
class Submitted:
    """Result of a submission: the resource id and whether this call created it."""

    id: int
    created: bool


@dataclass
class SweepReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    keys_purged: int = 0


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int


class Engine:
    """The durable engine over one database. Thread-safe: every call uses its own session."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        handlers: HandlerRegistry | None = None,
        workflows: WorkflowRegistry | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.handlers = handlers or HandlerRegistry()
        self.handlers.route(settings.task_queues)
        self.workflows = workflows or WorkflowRegistry()
        self.metrics = metrics
        self._queued_listeners: list[Callable[[list[int]], None]] = []
        self.decision_listeners: list[DecisionListener] = []
        # Claims and completions lock the rows they read on PostgreSQL; SQLite's BEGIN IMMEDIATE
        # already serialises writers. Built once: a statement object keeps its cache key.
        sqlite = db.is_sqlite
        self._claim_any, self._claim_in_queues, self._claim_one = (
            (_CLAIM_ANY, _CLAIM_IN_QUEUES, _CLAIM_ONE)
            if sqlite
            else tuple(
                s.with_for_update(skip_locked=True) for s in (_CLAIM_ANY, _CLAIM_IN_QUEUES, _CLAIM_ONE)
            )
        )
        self._load_run_stmt = _LOAD_RUN if sqlite else _LOAD_RUN.with_for_update()

    # --- listeners ---------------------------------------------------------------------------

    def on_queued(self, listener: Callable[[list[int]], None]) -> None:
        """Call ``listener(task_ids)`` after new work was committed (executors wake up on it)."""
        self._queued_listeners.append(listener)

    def _notify(self, task_ids: list[int]) -> None:
        if not task_ids:
            return
        for listener in self._queued_listeners:
            try:
                listener(task_ids)
            except Exception:  # a broken listener must not undo a committed submission
                log.exception("queued-listener failed for tasks %s", task_ids)

    # --- submission --------------------------------------------------------------------------

    def submit_task(
        self,
        type_: str,
        input_: Any,
        *,
        submitted_by: str | None = None,
        idempotency_key: str | None = None,
        scope: str = "",
    ) -> Submitted:
        """Queue a standalone task. With a key, the same key and body return the original task."""
        task_type = self.handlers.get(type_)
        data = task_type.parse_input(input_).model_dump(mode="json")
        body_hash = idempotency.request_hash({"type": type_, "input": input_})
        key_scope = f"task:{scope}"
        if idempotency_key is not None:
            idempotency.check_key(idempotency_key)

        def create(session: Session) -> int:
            task = Task(
                type=type_,
                queue=task_type.queue,
                status=TaskState.QUEUED,
                input=data,
                max_attempts=task_type.retry.max_attempts,
                timeout_seconds=task_type.timeout_seconds,
                submitted_by=submitted_by,
                run_at=utcnow(),
            )
            session.add(task)
            session.flush()
            task.idempotency_key = f"task:{task.id}"
            events.record(
                session, actor=submitted_by, to_state=TaskState.QUEUED, task_id=task.id, reason="submitted"
            )
            return task.id

        result = self._idempotent(key_scope, idempotency_key, body_hash, "task", create)
        if result.created:
            self._count(type_, TaskState.QUEUED)
            self._notify([result.id])
        return result

    def start_run(
        self,
        workflow: str,
        input_: Any,
        *,
        submitted_by: str | None = None,
        idempotency_key: str | None = None,
        scope: str = "",
    ) -> Submitted:
        """Start a workflow run; the first step is queued in the same transaction."""
        defn = self.workflows.get(workflow)
        errors = check_input(defn, input_)
        if errors:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise InvalidInput(f"invalid input for workflow {workflow!r}: {detail}", errors)
        body_hash = idempotency.request_hash({"workflow": workflow, "input": input_})
        if idempotency_key is not None:
            idempotency.check_key(idempotency_key)
        queued: list[int] = []

        def create(session: Session) -> int:
            values: dict[str, Any] = {
                "workflow": workflow,
                "status": RunState.QUEUED,
                "input": input_,
                "context": {},
                "definition": defn.model_dump(mode="json", by_alias=True),
                "current_step": 0,
                "submitted_by": submitted_by,
            }
            with events.batched(session):
                conn = session.connection()
                key = conn.execute(_INSERT_RUN, values).inserted_primary_key
                assert key is not None
                run = runs.RunRecord(id=key[0], **values)
                events.record(
                    session, actor=submitted_by, to_state=RunState.QUEUED, run_id=run.id, reason="started"
                )
                before = _run_fields(run)
                queued.extend(t.id for t in runs.advance(session, run, self.handlers, actor=submitted_by))
                if _run_fields(run) != before:  # skipped steps, parked, or already finished
                    conn.execute(_SAVE_RUN, _run_fields(run))
            return run.id

        result = self._idempotent(f"run:{workflow}:{scope}", idempotency_key, body_hash, "run", create)
        if result.created:
            self._notify(queued)
        return result

    def _idempotent(
        self,
        scope: str,
        key: str | None,
        body_hash: str,
        resource_type: str,
        create: Callable[[Session], int],
    ) -> Submitted:
        if key is None:
            with self.db.write_session() as session:
                return Submitted(create(session), True)
        for _ in range(3):
            try:
                with self.db.write_session() as session:
                    existing = idempotency.lookup(session, scope, key, body_hash, resource_type)
                    if existing is not None:
                        return Submitted(existing, False)
                    resource_id = create(session)
                    idempotency.remember(
                        session,
                        scope,
                        key,
                        body_hash,
                        resource_type,
                        resource_id,
                        self.settings.idempotency_ttl_seconds,
                    )
                    return Submitted(resource_id, True)
            except IntegrityError:
                # A concurrent request with the same key won the insert; read what it created.
                continue
        raise Conflict(f"Idempotency-Key {key!r} is being used by a concurrent request; retry")

    # --- worker side -------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, queues: Sequence[str] | None = None) -> list[Claim]:
        """Claim up to ``limit`` ready tasks for ``worker`` (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
        if limit <= 0:
            return []
        now = utcnow()
        params: dict[str, Any] = {"b_now": now, "b_limit": limit}
        if queues:
            params["b_queues"] = list(queues)
        return self._claim_rows(self._claim_in_queues if queues else self._claim_any, params, worker, now)

    def claim_task(self, task_id: int, worker: str) -> Claim | None:
        """Claim one specific task if it is ready (used by executors that deliver task ids)."""
        now = utcnow()
        claims = self._claim_rows(self._claim_one, {"b_now": now, "b_id": task_id}, worker, now)
        return claims[0] if claims else None

    def _claim_rows(
        self, stmt: Select[Any], params: dict[str, Any], worker: str, now: dt.datetime
    ) -> list[Claim]:
        with self.db.write_connection() as conn, events.batched(conn):
            claims = []
            for row in conn.execute(stmt, params).all():
                task = runs.QueuedTask(*row)
                lease = self._lease(task, worker, now)
                result = conn.execute(_TAKE, {"b_id": task.id, **lease})
                if getattr(result, "rowcount", 0) == 1:  # still queued: claimed once only
                    claims.append(self._claimed(conn, task, lease))
            return claims

    def _lease(self, task: runs.QueuedTask, worker: str, now: dt.datetime) -> dict[str, Any]:
        """The columns that make ``task`` running under a fresh lease of ``worker``."""
        return {
            "status": TaskState.RUNNING,
            "attempt": task.attempt + 1,
            "lease_owner": worker,
            "lease_until": now + dt.timedelta(seconds=self.settings.lease_seconds),
            "heartbeat_at": now,
            "started_at": now,
            "deadline_at": now + dt.timedelta(seconds=task.timeout_seconds) if task.timeout_seconds else None,
        }

    def _claimed(
        self,
        conn: Connection,
        task: runs.QueuedTask,
        lease: dict[str, Any],
        run: runs.RunRecord | None = None,
    ) -> Claim:
        """Record that ``task`` was claimed with ``lease``; mark its run running if it was queued.

        ``run`` is the task's run when the caller holds it (its status is then changed in place);
        otherwise a queued run is marked running by statement.
        """
        attempt: int = lease["attempt"]
        worker: str = lease["lease_owner"]
        events.record(
            conn,
            actor=worker,
            from_state=TaskState.QUEUED,
            to_state=TaskState.RUNNING,
            task_id=task.id,
            run_id=task.run_id,
            reason=f"claimed (attempt {attempt} of {task.max_attempts})",
            attempt=attempt,
        )
        if task.run_id is not None:
            if run is not None:
                started = run.status == RunState.QUEUED
                if started:
                    run.status = RunState.RUNNING
            else:
                result = conn.execute(_START_RUN, {"b_id": task.run_id, "status": RunState.RUNNING})
                started = getattr(result, "rowcount", 0) == 1
            if started:
                events.record(
                    conn,
                    actor=worker,
                    from_state=RunState.QUEUED,
                    to_state=RunState.RUNNING,
                    run_id=task.run_id,
                )
        self._count(task.type, TaskState.RUNNING)
        return Claim(
            task_id=task.id,
            type=task.type,
            input=task.input,
            attempt=attempt,
            max_attempts=task.max_attempts,
            worker=worker,
            idempotency_key=task.idempotency_key,
            run_id=task.run_id,
            step_name=task.step_name,
            submitted_by=task.submitted_by,
            deadline_at=lease["deadline_at"],
            started_at=lease["started_at"],
        )

    @staticmethod
    def _fence(claim: Claim) -> Any:
        return and_(
            Task.id == claim.task_id,
            Task.status == TaskState.RUNNING,
            Task.lease_owner == claim.worker,
            Task.attempt == claim.attempt,
        )

    def complete(
        self, claim: Claim, output: dict[str, Any], *, chain_queues: Sequence[str] | None = None
    ) -> tuple[bool, Claim | None]:
        """Record success; advance the run. Returns (accepted, next claim).

        ``accepted`` is False when the claim was fenced out (lease lost, cancelled). With
        ``chain_queues`` the run's next step is claimed for the same worker in the same
        transaction, saving a round trip through the queue.
        """
        now = utcnow()
        queued: list[runs.QueuedTask] = []
        next_claim: Claim | None = None
        with self.db.write_connection() as conn, events.batched(conn):
            result = conn.execute(
                _COMPLETE,
                {
                    "b_id": claim.task_id,
                    "b_worker": claim.worker,
                    "b_attempt": claim.attempt,
                    "status": TaskState.SUCCEEDED,
                    "output": output,
                    "finished_at": now,
                    "lease_owner": None,
                    "error": None,
                },
            )
            if getattr(result, "rowcount", 0) != 1:
                log.warning("completion of task %s attempt %s fenced out", claim.task_id, claim.attempt)
                return False, None
            events.record(
                conn,
                actor=claim.worker,
                from_state=TaskState.RUNNING,
                to_state=TaskState.SUCCEEDED,
                task_id=claim.task_id,
                run_id=claim.run_id,
                attempt=claim.attempt,
            )
            run = self._load_run(conn, claim.run_id) if claim.run_id is not None else None
            if run is not None and run.status not in TERMINAL_RUN_STATES:
                runs.record_step_output(run, claim.step_name or "", output)
                run.current_step += 1
                chained: dict[str, Any] = {}

                def chain(task: runs.QueuedTask) -> dict[str, Any] | None:
                    # The next step goes to this worker, inserted already claimed: no trip through
                    # the queue, and no second statement to claim it.
                    if (
                        chain_queues is None
                        or task.queue not in chain_queues
                        or task.type not in self.handlers
                    ):
                        return None
                    chained.update(self._lease(task, claim.worker, utcnow()))
                    return chained

                queued = runs.advance(conn, run, self.handlers, actor=claim.worker, claim=chain)
                if chained:
                    next_claim = self._claimed(conn, queued[0], chained, run=run)
                    queued = []
                conn.execute(_SAVE_RUN, _run_fields(run))
        self._observe(claim, "succeeded", now)
        self._count(claim.type, TaskState.SUCCEEDED)
        self._notify([t.id for t in queued])
        return True, next_claim

    def _load_run(self, conn: Connection, run_id: int) -> runs.RunRecord | None:
        """The run, locked for this transaction; write it back with ``_SAVE_RUN``."""
        row = conn.execute(self._load_run_stmt, {"b_id": run_id}).first()
        return runs.RunRecord(*row) if row is not None else None

    def fail(self, claim: Claim, error: str, *, retryable: bool) -> str | None:
        """Record a failed attempt: requeue with backoff, or fail for good. Returns the new state."""
        now = utcnow()
        with self.db.write_session() as session:
            task = session.scalars(select(Task).where(self._fence(claim))).first()
            if task is None:
                return None
            new_state = self._fail_task(
                session, task, error, retryable=retryable, actor=claim.worker, now=now
            )
        self._observe(claim, "failed" if new_state == TaskState.FAILED else "retry", now)
        self._count(claim.type, new_state)
        return new_state

    def _retry_policy(self, session: Session, task: Task) -> RetryPolicy:
        if task.run_id is not None:
            run = session.get(WorkflowRun, task.run_id)
            if run is not None:
                step = runs.step_def(run, task.step_name)
                if step is not None and step.retry is not None:
                    return RetryPolicy(**step.retry.model_dump())
        if task.type in self.handlers:
            return self.handlers.get(task.type).retry
        return RetryPolicy(max_attempts=task.max_attempts)

    def _fail_task(
        self, session: Session, task: Task, error: str, *, retryable: bool, actor: str, now: dt.datetime
    ) -> str:
        from_state = task.status
        task.lease_owner = None
        task.lease_until = None
        task.error = error[:8000]
        if retryable and task.attempt < task.max_attempts:
            delay = self._retry_policy(session, task).backoff(task.attempt)
            task.status = TaskState.QUEUED
            task.run_at = now + dt.timedelta(seconds=delay)
            events.record(
                session,
                actor=actor,
                from_state=from_state,
                to_state=TaskState.QUEUED,
                task_id=task.id,
                run_id=task.run_id,
                attempt=task.attempt,
                reason=f"retry in {delay:.1f}s after attempt {task.attempt}: {error}",
            )
            return TaskState.QUEUED
        task.status = TaskState.FAILED
        task.finished_at = now
        reason = error if not retryable else f"gave up after {task.attempt} attempts: {error}"
        events.record(
            session,
            actor=actor,
            from_state=from_state,
            to_state=TaskState.FAILED,
            task_id=task.id,
            run_id=task.run_id,
            attempt=task.attempt,
            reason=reason,
        )
        if task.run_id is not None:
            run = session.get(WorkflowRun, task.run_id)
            if run is not None and run.status not in TERMINAL_RUN_STATES:
                runs.finish(
                    session,
                    run,
                    RunState.FAILED,
                    actor=actor,
                    reason=f"step {task.step_name!r} failed: {error}",
                )
        return TaskState.FAILED

    def heartbeat(self, claims: Sequence[Claim]) -> set[int]:
        """Extend the leases of claims in flight; returns the task ids whose lease was lost."""
        if not claims:
            return set()
        now = utcnow()
        lease_until = now + dt.timedelta(seconds=self.settings.lease_seconds)
        lost: set[int] = set()
        with self.db.write_session() as session:
            for claim in claims:
                result = session.execute(
                    update(Task)
                    .where(self._fence(claim))
                    .values(lease_until=lease_until, heartbeat_at=now)
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0) != 1:
                    lost.add(claim.task_id)
        return lost

    def sweep(self, actor: str = "sweeper") -> SweepReport:
        """Requeue (or fail) tasks whose lease expired or whose deadline passed; purge old keys."""
        now = utcnow()
        report = SweepReport()
        expired = or_(
            Task.lease_until < now,
            and_(
                Task.lease_until.is_(None),
                Task.started_at < now - dt.timedelta(seconds=self.settings.lease_seconds),
            ),
            Task.deadline_at < now,
        )
        stmt = select(Task).where(Task.status == TaskState.RUNNING, expired).order_by(Task.id).limit(500)
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        with self.db.write_session() as session:
            for task in session.scalars(stmt):
                timed_out = task.deadline_at is not None and task.deadline_at < now
                why = (
                    f"timed out after {task.timeout_seconds:g}s"
                    if timed_out and task.timeout_seconds
                    else f"lease of {task.lease_owner} expired (worker lost)"
                )
                state = self._fail_task(session, task, why, retryable=True, actor=actor, now=now)
                (report.requeued if state == TaskState.QUEUED else report.failed).append(task.id)
            report.keys_purged = idempotency.purge_expired(session)
        if report.requeued or report.failed:
            log.warning("sweeper requeued %s, failed %s", report.requeued, report.failed)
        self._notify(report.requeued)
        return report

    # --- people ------------------------------------------------------------------------------

    def cancel_task(self, task_id: int, *, by: str | None) -> Task:
        """Cancel a queued, running or waiting task; a running worker's late result is discarded."""
        with self.db.write_session() as session:
            task = session.get(Task, task_id)
            if task is None:
                raise NotFound(f"task {task_id} not found")
            if task.status in TERMINAL_TASK_STATES:
                raise Conflict(f"task {task_id} is already {task.status}")
            if task.run_id is not None:
                run = session.get(WorkflowRun, task.run_id)
                if run is not None:
                    runs.cancel(session, run, actor=by)
                    return task
            runs.cancel_task(session, task, actor=by, reason="cancelled on request")
            return task

    def cancel_run(self, run_id: int, *, by: str | None) -> WorkflowRun:
        with self.db.write_session() as session:
            run = session.get(WorkflowRun, run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            if run.status in TERMINAL_RUN_STATES:
                raise Conflict(f"run {run_id} is already {run.status}")
            runs.cancel(session, run, actor=by)
            return run

    def retry(self, task_id: int, *, by: str | None) -> Task:
        """Give a failed or cancelled task one more attempt; a failed run resumes at that step."""
        with self.db.write_session() as session:
            task = session.get(Task, task_id, with_for_update=not self.db.is_sqlite)
            if task is None:
                raise NotFound(f"task {task_id} not found")
            if task.status not in (TaskState.FAILED, TaskState.CANCELLED) or task.type == APPROVAL_TASK_TYPE:
                raise Conflict(
                    f"task {task_id} is {task.status}; only failed or cancelled tasks can be retried"
                )
            if task.run_id is not None:
                run = session.get(WorkflowRun, task.run_id, with_for_update=not self.db.is_sqlite)
                if run is None or run.status != RunState.FAILED:
                    raise Conflict(f"task {task_id} belongs to run {task.run_id}, which is not failed")
                previous = run.status
                run.status = RunState.RUNNING
                run.finished_at = None
                run.error = None
                events.record(
                    session,
                    actor=by,
                    from_state=previous,
                    to_state=RunState.RUNNING,
                    run_id=run.id,
                    reason=f"retry of step {task.step_name!r}",
                )
            previous_state = task.status
            task.status = TaskState.QUEUED
            task.max_attempts = task.attempt + 1
            task.run_at = utcnow()
            task.finished_at = None
            events.record(
                session,
                actor=by,
                from_state=previous_state,
                to_state=TaskState.QUEUED,
                task_id=task.id,
                run_id=task.run_id,
                reason="retry requested",
            )
        self._notify([task_id])
        return task

    def retry_run(self, run_id: int, *, by: str | None) -> WorkflowRun:
        """Resume a failed run at its failed step."""
        with self.db.session() as session:
            run = session.get(WorkflowRun, run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            failed = session.scalars(
                select(Task.id)
                .where(Task.run_id == run_id, Task.status == TaskState.FAILED)
                .order_by(Task.id.desc())
            ).first()
        if run.status != RunState.FAILED or failed is None:
            raise Conflict(f"run {run_id} is {run.status}; only a run that failed at a step can be retried")
        self.retry(failed, by=by)
        return self.get_run(run_id)

    def throughput(self, since: dt.datetime) -> list[tuple[dt.datetime, str, int]]:
        """(finished_at, status, 1) rows of tasks finished since ``since`` (bucketed by the caller)."""
        with self.db.session() as session:
            rows = session.execute(
                select(Task.finished_at, Task.status)
                .where(Task.finished_at >= since)
                .order_by(Task.finished_at)
            )
            return [(at, status, 1) for at, status in rows if at is not None]

    def run_state_counts(self) -> dict[str, int]:
        with self.db.session() as session:
            rows = session.execute(select(WorkflowRun.status, func.count()).group_by(WorkflowRun.status))
            return {status: int(n) for status, n in rows}

    def decide(self, approval_id: int, *, approve: bool, by: str, comment: str | None = None) -> Approval:
        """Record a person's decision. Exactly one of two concurrent decisions wins; the other gets
        :class:`Conflict`. The submitter of a run cannot decide on it (four eyes)."""
        queued: list[int] = []
        with self.db.write_session() as session:
            approval = session.get(Approval, approval_id)
            if approval is None:
                raise NotFound(f"approval {approval_id} not found")
            if approval.status != ApprovalState.PENDING:
                raise Conflict(f"approval {approval_id} was already decided: {approval.status}")
            if approval.submitted_by is not None and approval.submitted_by == by:
                raise Forbidden("four eyes: you cannot decide on a run you submitted")
            now = utcnow()
            status = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
            result = session.execute(
                update(Approval)
                .where(Approval.id == approval_id, Approval.status == ApprovalState.PENDING)
                .values(status=status, decided_by=by, decided_at=now, comment=comment)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise Conflict(f"approval {approval_id} was already decided")
            session.refresh(approval)
            run = session.get(WorkflowRun, approval.run_id)
            task = session.get(Task, approval.task_id)
            assert run is not None and task is not None
            output = {
                "approved": approve,
                "decided_by": by,
                "comment": comment,
                "decided_at": now.isoformat(),
            }
            task.status = TaskState.SUCCEEDED
            task.output = output
            task.finished_at = now
            events.record(
                session,
                actor=by,
                from_state=TaskState.WAITING_APPROVAL,
                to_state=TaskState.SUCCEEDED,
                task_id=task.id,
                run_id=run.id,
                reason=f"{'approved' if approve else 'rejected'}" + (f": {comment}" if comment else ""),
            )
            for listener in self.decision_listeners:
                listener(session, approval, run)
            runs.record_step_output(run, approval.step_name, output)
            if approve:
                run.current_step += 1
                run.status = RunState.RUNNING
                events.record(
                    session,
                    actor=by,
                    from_state=RunState.WAITING_APPROVAL,
                    to_state=RunState.RUNNING,
                    run_id=run.id,
                    reason=f"approved step {approval.step_name!r}",
                )
                queued = [t.id for t in runs.advance(session, run, self.handlers, actor=by)]
            else:
                runs.finish(
                    session,
                    run,
                    RunState.REJECTED,
                    actor=by,
                    reason=f"rejected at step {approval.step_name!r}",
                )
        self._notify(queued)
        return approval

    # --- queries -----------------------------------------------------------------------------

    def get_task(self, task_id: int) -> Task:
        with self.db.session() as session:
            task = session.get(Task, task_id)
            if task is None:
                raise NotFound(f"task {task_id} not found")
            return task

    def list_tasks(
        self,
        *,
        status: str | None = None,
        type_: str | None = None,
        submitted_by: str | None = None,
        run_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        conds = []
        if status:
            conds.append(Task.status == status)
        if type_:
            conds.append(Task.type == type_)
        if submitted_by:
            conds.append(Task.submitted_by == submitted_by)
        if run_id is not None:
            conds.append(Task.run_id == run_id)
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(Task).where(*conds)) or 0
            items = list(
                session.scalars(
                    select(Task).where(*conds).order_by(Task.id.desc()).limit(limit).offset(offset)
                )
            )
        return Page(items, total)

    def task_events(
        self, *, task_id: int | None = None, run_id: int | None = None, after_id: int = 0
    ) -> list[TaskEvent]:
        conds = [TaskEvent.id > after_id]
        if task_id is not None:
            conds.append(TaskEvent.task_id == task_id)
        if run_id is not None:
            conds.append(TaskEvent.run_id == run_id)
        with self.db.session() as session:
            return list(session.scalars(select(TaskEvent).where(*conds).order_by(TaskEvent.id)))

    def get_run(self, run_id: int) -> WorkflowRun:
        with self.db.session() as session:
            run = session.get(WorkflowRun, run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            return run

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        submitted_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        conds = []
        if status:
            conds.append(WorkflowRun.status == status)
        if workflow:
            conds.append(WorkflowRun.workflow == workflow)
        if submitted_by:
            conds.append(WorkflowRun.submitted_by == submitted_by)
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(WorkflowRun).where(*conds)) or 0
            items = list(
                session.scalars(
                    select(WorkflowRun)
                    .where(*conds)
                    .order_by(WorkflowRun.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            )
        return Page(items, total)

    def get_approval(self, approval_id: int) -> Approval:
        with self.db.session() as session:
            approval = session.get(Approval, approval_id)
            if approval is None:
                raise NotFound(f"approval {approval_id} not found")
            return approval

    def list_approvals(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> Page:
        conds = [Approval.status == status] if status else []
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(Approval).where(*conds)) or 0
            items = list(
                session.scalars(
                    select(Approval).where(*conds).order_by(Approval.id).limit(limit).offset(offset)
                )
            )
        return Page(items, total)

    def state_counts(self) -> list[tuple[str, str, int]]:
        """(type, state, count) for every task type and state present."""
        with self.db.session() as session:
            rows = session.execute(
                select(Task.type, Task.status, func.count()).group_by(Task.type, Task.status)
            )
            return [(t, s, int(n)) for t, s, n in rows]

    # --- metrics -----------------------------------------------------------------------------

    def _count(self, type_: str, state: str) -> None:
        if self.metrics is not None:
            self.metrics.transitions.labels(type=type_, to_state=state).inc()

    def _observe(self, claim: Claim, outcome: str, now: dt.datetime) -> None:
        if self.metrics is not None:
            seconds = max((now - claim.started_at).total_seconds(), 0.0)
            self.metrics.step_latency.labels(type=claim.type, outcome=outcome).observe(seconds)


def _run_fields(run: runs.RunRecord) -> dict[str, Any]:
    """Parameters of ``_SAVE_RUN``: every field that advancing a run may change.

    (``updated_at`` is set by the column's onupdate.) ``output`` is left out while it is None:
    a JSON column would store None as the JSON text ``null`` rather than SQL NULL.
    """
    fields = {
        "b_id": run.id,
        "status": run.status,
        "context": run.context,
        "current_step": run.current_step,
        "error": run.error,
        "finished_at": run.finished_at,
    }
    if run.output is not None:
        fields["output"] = run.output
    return fields
