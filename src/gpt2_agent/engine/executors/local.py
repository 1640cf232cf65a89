"""The embedded executor: a thread pool inside the server process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors.base import Executor, worker_id
from gpt2_agent.engine.runner import Runner

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """Claims ready tasks whenever a thread is free; also runs the lease sweeper.

    A dispatcher thread polls the database (``poll_interval_seconds``) and wakes up at once when
    this process queues work, so tasks queued by other processes are picked up too.
    """

    name = "local"
    is_local = True

    def __init__(
        self, engine: Engine, *, queues: Sequence[str] | None = None, concurrency: int | None = None
    ) -> None:
        super().__init__(engine, queues=queues)
        self.concurrency = concurrency or engine.settings.executor_concurrency
        self.worker = worker_id("local:")
        self.runner = Runner(engine, self.worker, self.queues)
        self._pool: ThreadPoolExecutor | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="gpt2-agent-task")
        self.runner.start()
        self.engine.on_queued(self.notify)
        for target, name in ((self._dispatch_loop, "dispatch"), (self._sweep_loop, "sweep")):
            thread = threading.Thread(target=target, name=f"gpt2-agent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self.runner.stop()

    def notify(self, task_ids: list[int]) -> None:
        self._wake.set()

    def _dispatch_loop(self) -> None:
        poll = self.engine.settings.poll_interval_seconds
        while not self._stop.is_set():
            self._wake.clear()
            try:
                free = self.concurrency - self._busy
                claims = self.engine.claim(self.worker, free, self.queues) if free > 0 else []
            except Exception:
                log.exception("claiming tasks failed; retrying")
                claims = []
            for claim in claims:
                self._submit(claim)
            if claims and len(claims) == free:
                continue  # there may be more ready work
            self._wake.wait(poll)

    def _submit(self, claim: object) -> None:
        assert self._pool is not None
        with self._busy_lock:
            self._busy += 1
        future: Future[None] = self._pool.submit(self.runner.run, claim)  # type: ignore[arg-type]
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._busy_lock:
            self._busy -= 1
        exc = future.exception()
        if exc is not None:
            log.error("runner crashed: %s", exc)
        self._wake.set()

    def _sweep_loop(self) -> None:
        interval = self.engine.settings.sweep_interval_seconds
        while not self._stop.wait(interval):
            try:
                self.engine.sweep()
            except Exception:
                log.exception("sweep failed")
