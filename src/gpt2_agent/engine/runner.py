"""Running claimed tasks: call the handler, keep its lease alive, record the outcome.

This is the only place handler code is invoked, so every executor (local threads, Celery
workers) behaves the same.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.errors import EngineError, InvalidInput, PermanentError, UnknownTaskType
from gpt2_agent.engine.handlers import TaskContext
from gpt2_agent.engine.workloads import Claim
from gpt2_agent.store.base import utcnow

log = logging.getLogger(__name__)


class LeaseKeeper:
    """One thread per process that heartbeats every claim in flight and enforces deadlines.

    A lost lease (cancelled, or taken over after this process stalled) sets the task's
    ``ctx.cancelled`` so the handler can stop; its result is then fenced out anyway.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._inflight: dict[int, tuple[Claim, TaskContext]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="gpt2-agent-leases", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def track(self, claim: Claim, ctx: TaskContext) -> None:
        with self._lock:
            self._inflight[claim.task_id] = (claim, ctx)

    def untrack(self, claim: Claim) -> None:
        with self._lock:
            self._inflight.pop(claim.task_id, None)

    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def _loop(self) -> None:
        while not self._stop.wait(self.engine.settings.heartbeat_seconds):
            try:
                self.beat()
            except Exception:  # the database may be briefly unreachable; try again next beat
                log.exception("heartbeat failed")

    def beat(self) -> None:
        with self._lock:
            items = list(self._inflight.values())
        if not items:
            return
        now = utcnow()
        for claim, ctx in items:
            if claim.deadline_at is not None and claim.deadline_at < now and not ctx.cancelled.is_set():
                ctx.cancelled.set()
                self.engine.fail(claim, f"timed out at {claim.deadline_at.isoformat()}", retryable=True)
        lost = self.engine.heartbeat([c for c, ctx in items if not ctx.cancelled.is_set()])
        with self._lock:
            # A claim that finished meanwhile is no longer running in the database: not lost.
            lost &= set(self._inflight)
        for claim, ctx in items:
            if claim.task_id in lost:
                log.warning("lost lease on task %s; stopping it", claim.task_id)
                ctx.cancelled.set()


class Runner:
    """Executes claims for one worker identity."""

    def __init__(self, engine: Engine, worker: str, queues: Sequence[str] | None = None) -> None:
        self.engine = engine
        self.worker = worker
        self.queues = list(queues) if queues else None
        self.leases = LeaseKeeper(engine)

    def start(self) -> None:
        self.leases.start()

    def stop(self) -> None:
        self.leases.stop()

    def run(self, claim: Claim | None) -> None:
        """Run a claim and, when the workflow hands over its next step directly, that one too."""
        while claim is not None:
            claim = self.run_one(claim)

    def run_one(self, claim: Claim) -> Claim | None:
        ctx = TaskContext(
            task_id=claim.task_id,
            attempt=claim.attempt,
            idempotency_key=claim.idempotency_key,
            run_id=claim.run_id,
            step_name=claim.step_name,
            submitted_by=claim.submitted_by,
        )
        self.leases.track(claim, ctx)
        try:
            try:
                task_type = self.engine.handlers.get(claim.type)
                data = task_type.parse_input(claim.input)
                result = task_type.fn(ctx, data)
                output = _as_output(task_type.output_model, result)
            except (InvalidInput, UnknownTaskType, PermanentError) as exc:
                self.engine.fail(claim, f"{type(exc).__name__}: {exc}", retryable=False)
                return None
            except EngineError as exc:
                self.engine.fail(claim, f"{type(exc).__name__}: {exc}", retryable=False)
                return None
            except Exception as exc:  # any other error is treated as transient
                log.warning("task %s attempt %s failed: %s", claim.task_id, claim.attempt, exc)
                self.engine.fail(claim, _describe(exc), retryable=True)
                return None
            if ctx.cancelled.is_set():
                return None  # cancelled or lease lost meanwhile; the result would be fenced out
            chain = self.queues if self.queues is not None else ["default"]
            _, next_claim = self.engine.complete(claim, output, chain_queues=chain)
            return next_claim
        finally:
            self.leases.untrack(claim)


def _as_output(model: type[BaseModel], result: object) -> dict[str, object]:
    try:
        value = result if isinstance(result, model) else model.model_validate(result)
    except ValidationError as exc:
        raise PermanentError(f"handler returned invalid output: {exc}") from None
    return value.model_dump(mode="json")


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"
