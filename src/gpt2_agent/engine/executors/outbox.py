"""The outbox: which queued tasks still need a broker message, and a thread that sends them.

The ``tasks`` table is the outbox. A task needs a message when it is queued and due and the
last message sent for it (``task_dispatch``) was for an earlier attempt, failed, or is older
than ``dispatch_republish_seconds`` (a broker that lost its messages). Rows are reserved under
the task's row lock and committed *before* publishing, so two dispatchers never send the same
publication; a publication that fails is released and retried. A crash between commit and
publish only delays the task until the republish window passes. Duplicate messages are harmless:
the worker's claim is fenced, so only one of them finds work.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, insert, or_, select, update

from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.states import TaskState
from gpt2_agent.store.base import utcnow
from gpt2_agent.store.dispatch_tables import TaskDispatch
from gpt2_agent.store.engine_tables import Task

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class Publication:
    """One message to send: the task, the attempt it is for, its queue and the message id."""

    task_id: int
    attempt: int
    queue: str
    message_id: str


class Outbox:
    """The SQL side of dispatching; knows nothing about the broker."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reserve(self, task_ids: Iterable[int] | None = None, *, limit: int = BATCH) -> list[Publication]:
        """Mark up to ``limit`` tasks that need a message as published now and return them.

        With ``task_ids``, only those tasks are considered (the fast path right after a commit).
        The task's ``external_id`` gets the message id (the Celery task id).
        """
        now = utcnow()
        stale = now - dt.timedelta(seconds=self.engine.settings.dispatch_republish_seconds)
        stmt = (
            select(Task.id, Task.queue, Task.attempt, TaskDispatch.task_id, TaskDispatch.publications)
            .outerjoin(TaskDispatch, TaskDispatch.task_id == Task.id)
            .where(
                Task.status == TaskState.QUEUED,
                Task.run_at <= now,
                or_(
                    TaskDispatch.task_id.is_(None),
                    TaskDispatch.attempt != Task.attempt,
                    TaskDispatch.published_at.is_(None),
                    TaskDispatch.published_at < stale,
                ),
            )
            .order_by(Task.id)
            .limit(limit)
        )
        if task_ids is not None:
            ids = sorted(set(task_ids))
            if not ids:
                return []
            stmt = stmt.where(Task.id.in_(ids))
        if not self.engine.db.is_sqlite:
            # Lock only the task rows (the dispatch side of an outer join cannot be locked); a
            # row another dispatcher or a claiming worker holds is skipped, not waited for.
            stmt = stmt.with_for_update(of=Task, skip_locked=True)
        with self.engine.db.write_session() as session:
            rows = list(session.execute(stmt))
            if not rows:
                return []
            pubs = [Publication(r[0], r[2], r[1], uuid.uuid4().hex) for r in rows]
            fresh = [p for p, r in zip(pubs, rows, strict=True) if r[3] is None]
            again = [(p, r[4]) for p, r in zip(pubs, rows, strict=True) if r[3] is not None]
            if fresh:
                session.execute(
                    insert(TaskDispatch),
                    [
                        {
                            "task_id": p.task_id,
                            "attempt": p.attempt,
                            "message_id": p.message_id,
                            "queue": p.queue,
                            "published_at": now,
                            "publications": 1,
                        }
                        for p in fresh
                    ],
                )
            if again:
                session.execute(
                    update(TaskDispatch),
                    [
                        {
                            "task_id": p.task_id,
                            "attempt": p.attempt,
                            "message_id": p.message_id,
                            "queue": p.queue,
                            "published_at": now,
                            "publications": (count or 0) + 1,
                        }
                        for p, count in again
                    ],
                )
            session.execute(update(Task), [{"id": p.task_id, "external_id": p.message_id} for p in pubs])
        return pubs

    def release(self, pubs: Sequence[Publication]) -> None:
        """Forget publications that did not reach the broker, so the next pass sends them again."""
        if not pubs:
            return
        with self.engine.db.write_session() as session:
            for pub in pubs:
                session.execute(
                    update(TaskDispatch)
                    .where(
                        and_(TaskDispatch.task_id == pub.task_id, TaskDispatch.message_id == pub.message_id)
                    )
                    .values(published_at=None)
                    .execution_options(synchronize_session=False)
                )


Publish = Callable[[Publication], None]


class Dispatcher:
    """A thread that publishes what :class:`Outbox` reserves.

    ``notify(ids)`` (called after a commit that queued work) publishes those tasks at once; every
    ``interval`` seconds it also publishes whatever else is due (retries whose backoff ended,
    tasks queued while the broker was down, lost messages). On a broker error it stops the
    batch, releases the rest and tries again on the next pass: the tasks wait safely in SQL.
    """

    def __init__(self, outbox: Outbox, publish: Publish, *, interval: float, name: str = "dispatch") -> None:
        self.outbox = outbox
        self.publish = publish
        self.interval = interval
        self.name = name
        self.published = 0  # messages sent by this dispatcher (for tests and logs)
        self.failures = 0  # passes that hit a broker error
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broker_down = False

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=f"gpt2-agent-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop the thread; with ``wait``, first send what was notified (else the next pass of any
        other process does)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if wait:
            with self._lock:
                ids, self._pending = self._pending, set()
            if ids:
                self._safe_flush(ids)

    def notify(self, task_ids: list[int]) -> None:
        with self._lock:
            self._pending.update(task_ids)
        self._wake.set()

    def flush(self, task_ids: Iterable[int] | None = None) -> int:
        """Reserve and publish once (all due tasks, or only ``task_ids``); returns messages sent."""
        sent = 0
        while True:
            pubs = self.outbox.reserve(task_ids)
            for index, pub in enumerate(pubs):
                try:
                    self.publish(pub)
                except Exception as exc:
                    self._on_broker_error(exc, pubs[index:])
                    return sent
                sent += 1
            self.published += len(pubs)
            if self._broker_down and pubs:
                log.warning("broker reachable again; dispatching resumed")
                self._broker_down = False
            if task_ids is not None or len(pubs) < BATCH:
                return sent

    def _on_broker_error(self, exc: Exception, unsent: Sequence[Publication]) -> None:
        self.failures += 1
        if not self._broker_down:
            log.warning(
                "cannot publish to the broker (%s); %d task(s) stay queued in the database and are "
                "published when it is back",
                exc,
                len(unsent),
            )
        self._broker_down = True
        try:
            self.outbox.release(unsent)
        except Exception:
            # The database is unreachable too; the republish window will recover these tasks.
            log.exception("could not release unsent publications")

    def _safe_flush(self, task_ids: Iterable[int] | None) -> None:
        try:
            self.flush(task_ids)
        except Exception as exc:
            # Database unreachable: nothing was reserved, everything stays queued in SQL.
            log.warning("dispatch pass failed: %s", exc)

    def _loop(self) -> None:
        next_sweep = 0.0
        while not self._stop.is_set():
            with self._lock:
                ids, self._pending = self._pending, set()
            if ids and not self._broker_down:
                self._safe_flush(ids)
            now = time.monotonic()
            if now >= next_sweep:
                self._safe_flush(None)
                next_sweep = time.monotonic() + self.interval
            self._wake.wait(max(0.0, next_sweep - time.monotonic()))
            self._wake.clear()
