"""The Celery executor: SQL stays the truth, Celery (Redis or RabbitMQ) only carries task ids.

Two roles:

* :class:`CeleryExecutor` runs in every process that queues work (API replicas, and each worker
  process for the steps it queues): after a commit it publishes an ``ExecuteTask`` message to the
  task's queue, and a dispatcher thread re-publishes what the broker never got (see
  :mod:`~gpt2_agent.engine.executors.outbox`).
* :class:`WorkerRuntime` runs in each Celery worker process: it claims the task named by a
  message (``Engine.claim_task``, fenced), runs it through the same :class:`Runner` as the local
  executor (heartbeats, deadlines, retries), and sweeps expired leases so a killed or stopped
  worker's steps are requeued and published again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.exceptions import Reject
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors.base import Executor, worker_id
from gpt2_agent.engine.executors.celery_app import TASK_NAME, make_celery, queue_name
from gpt2_agent.engine.executors.outbox import Dispatcher, Outbox, Publication
from gpt2_agent.engine.runner import Runner
from gpt2_agent.engine.workloads import ExecuteTask
from gpt2_agent.store import Database

log = logging.getLogger(__name__)


class CeleryExecutor(Executor):
    """Publishes queued tasks to Celery; the work itself happens in ``gpt2-agent worker`` processes.

    ``start()`` subscribes to the engine's queued-work notifications and starts the dispatcher;
    ``notify(ids)`` publishes those tasks; ``stop(wait)`` stops it (sending what is pending first).
    """

    name = "celery"
    is_local = False

    def __init__(
        self, engine: Engine, *, queues: Sequence[str] | None = None, app: Celery | None = None
    ) -> None:
        super().__init__(engine, queues=queues)
        self.app = app or make_celery(engine.settings)
        self.outbox = Outbox(engine)
        self.dispatcher = Dispatcher(
            self.outbox,
            self.publish,
            interval=engine.settings.dispatch_interval_seconds,
            name="celery-dispatch",
        )
        self._subscribed = False

    def start(self) -> None:
        if not self._subscribed:
            self.engine.on_queued(self.notify)
            self._subscribed = True
        self.dispatcher.start()

    def stop(self, wait: bool = True) -> None:
        self.dispatcher.stop(wait=wait)

    def notify(self, task_ids: list[int]) -> None:
        self.dispatcher.notify(task_ids)

    def publish(self, pub: Publication) -> None:
        """Send one ``ExecuteTask`` message; the Celery task id is the reserved message id."""
        self.app.send_task(
            TASK_NAME,
            args=[ExecuteTask(task_id=pub.task_id).model_dump(mode="json")],
            queue=queue_name(self.engine.settings, pub.queue),
            task_id=pub.message_id,
        )


class WorkerRuntime:
    """One Celery worker process's engine side: claim, run, heartbeat, sweep, publish follow-ups.

    Build it in the process that runs tasks (a prefork child, or the worker itself for the
    ``threads``/``solo`` pools), then :meth:`start` it; :meth:`execute` is the Celery task body.
    """

    def __init__(self, engine: Engine, app: Celery, queues: Sequence[str]) -> None:
        self.engine = engine
        self.queues = list(queues)
        limit_idle_transactions(engine.db, max(engine.settings.lease_seconds, 10.0))
        self.worker = worker_id("celery:")
        self.runner = Runner(engine, self.worker, self.queues)
        self.publisher = CeleryExecutor(engine, queues=self.queues, app=app)
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def start(self) -> None:
        self.runner.start()
        self.publisher.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="gpt2-agent-sweep", daemon=True)
        self._sweeper.start()
        log.info("gpt2-agent worker process ready: %s on queues %s", self.worker, ",".join(self.queues))

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self.publisher.stop(wait=wait)
        self.runner.stop()

    def execute(self, payload: dict[str, Any]) -> str:
        """Claim and run the task a message names. Never raises across the process boundary,
        except to hand the message back while the database is unreachable."""
        try:
            workload = ExecuteTask.model_validate(payload)
        except Exception as exc:
            log.error("dropping malformed message %r: %s", payload, exc)
            return "malformed"
        try:
            claim = self.engine.claim_task(workload.task_id, self.worker)
        except OperationalError as exc:
            # Nothing was claimed; give the message back after a pause instead of losing it.
            log.warning("database unreachable while claiming task %s: %s", workload.task_id, exc.orig)
            time.sleep(1.0)
            raise Reject(f"database unreachable: {exc.orig}", requeue=True) from None
        if claim is None:
            # Already claimed, finished, cancelled or not due: a duplicate or stale message.
            log.debug("task %s: nothing to claim", workload.task_id)
            return "nothing to claim"
        try:
            self.runner.run(claim)
        except Exception:
            # Recording the outcome failed (database lost mid-step); the lease runs out and the
            # sweeper requeues the step, whose handler is idempotent by its key.
            log.exception("task %s attempt %s: could not record the outcome", claim.task_id, claim.attempt)
            return "outcome not recorded"
        return "ran"

    def _sweep_loop(self) -> None:
        interval = self.engine.settings.sweep_interval_seconds
        while not self._stop.wait(interval):
            try:
                self.engine.sweep(actor=f"sweeper:{self.worker}")
            except Exception as exc:
                log.warning("sweep failed: %s", exc)


def limit_idle_transactions(db: Database, seconds: float) -> None:
    """Have PostgreSQL end this process's sessions that sit idle inside a transaction.

    A worker frozen in the middle of a transaction (SIGSTOP, a paused VM) keeps its row locks,
    and the sweeper (``SKIP LOCKED``) could never take its steps over; PostgreSQL's
    ``idle_in_transaction_session_timeout`` ends such a session and releases the locks. No
    transaction of the engine waits on its client for anywhere near this long.
    """
    if db.is_sqlite:
        return
    milliseconds = int(seconds * 1000)

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {milliseconds}")
        dbapi_conn.commit()

    event.listen(db.engine, "connect", on_connect)
