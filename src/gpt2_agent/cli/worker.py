"""``gpt2-agent worker``: a Celery worker that runs the engine's tasks.

It registers the same actions, workflows and plugins as the server (``build_engine``), consumes
the queues it is given (default: every queue a registered task type uses), and in each worker
process claims tasks in SQL, heartbeats their leases, sweeps expired ones and publishes the next
steps it queues. Mount with ``app.command()(worker)`` or ``app.add_typer(worker_app, name="worker")``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Annotated, Any

import typer

from gpt2_agent.config import Settings, load_settings

log = logging.getLogger(__name__)

POOLS = ("prefork", "threads", "solo")


class _ProcessRuntime:
    """Builds the engine side lazily in whichever process ends up running tasks."""

    def __init__(self, settings: Settings, queues: list[str]) -> None:
        self.settings = settings
        self.queues = queues
        self.engine: Any = None
        self.app: Any = None
        self._runtime: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> Any:
        from gpt2_agent.engine.executors.celery import WorkerRuntime

        with self._lock:
            if self._runtime is None or self._pid != os.getpid():
                # A forked child must not share the parent's database connections.
                self.engine.db.engine.dispose(close=False)
                self._runtime = WorkerRuntime(self.engine, self.app, self.queues)
                self._runtime.start()
                self._pid = os.getpid()
            return self._runtime

    def execute(self, payload: dict[str, Any]) -> str:
        result: str = self.get().execute(payload)
        return result

    def shutdown(self) -> None:
        with self._lock:
            if self._runtime is not None and self._pid == os.getpid():
                self._runtime.stop(wait=True)
                self._runtime = None


def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, help="Worker processes (or threads)")
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option("--queues", "-Q", help="Comma-separated queues (default: all the task types use)"),
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="debug, info, warning, error")] = "info",
    pool: Annotated[str, typer.Option(help="prefork (isolated processes), threads or solo")] = "prefork",
    hostname: Annotated[
        str | None, typer.Option("--hostname", "-n", help="Node name (must be unique per broker)")
    ] = None,
    max_tasks_per_child: Annotated[
        int | None, typer.Option(min=1, help="Recycle a process after this many messages")
    ] = None,
) -> None:
    """Run a Celery worker (needs GPT2_AGENT_EXECUTOR=celery and GPT2_AGENT_BROKER_URL)."""
    from gpt2_agent.api.app import build_engine
    from gpt2_agent.engine.executors.celery_app import make_celery, queue_name

    if pool not in POOLS:
        raise typer.BadParameter(f"pool must be one of {', '.join(POOLS)}", param_hint="--pool")
    settings = load_settings()
    level = loglevel.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    if settings.executor != "celery":
        log.warning("GPT2_AGENT_EXECUTOR is %r; API processes will not publish to Celery", settings.executor)

    engine, _ = build_engine(settings)  # runs migrations once, before any process is forked
    if queues:
        wanted = [q.strip() for q in queues.split(",") if q.strip()]
    else:
        wanted = sorted({engine.handlers.get(n).queue for n in engine.handlers.names()} | {"default"})
    runtime = _ProcessRuntime(settings, wanted)
    app = make_celery(settings, execute=runtime.execute)
    runtime.engine, runtime.app = engine, app
    engine.db.dispose()
    _connect_signals(runtime, pool)

    node = hostname or f"gpt2-agent-{os.getpid()}@{socket.gethostname()}"
    argv = [
        "worker",
        f"--concurrency={concurrency or os.cpu_count() or 2}",
        f"--queues={','.join(queue_name(settings, q) for q in wanted)}",
        f"--loglevel={level}",
        f"--pool={pool}",
        f"--hostname={node}",
        f"--max-tasks-per-child={max_tasks_per_child or settings.worker_max_tasks_per_child}",
        "--without-mingle",
        "--without-gossip",
    ]
    log.info("starting Celery worker %s on %s (queues %s)", node, _masked(settings.broker_url), wanted)
    app.worker_main(argv)


def _connect_signals(runtime: _ProcessRuntime, pool: str) -> None:
    from celery import signals

    def child_init(**_: Any) -> None:
        runtime.get()

    def child_shutdown(**_: Any) -> None:
        runtime.shutdown()

    def node_ready(**_: Any) -> None:
        if pool != "prefork":  # tasks run in this process
            runtime.get()

    def node_shutdown(**_: Any) -> None:
        if pool != "prefork":
            runtime.shutdown()

    signals.worker_process_init.connect(child_init, weak=False)
    signals.worker_process_shutdown.connect(child_shutdown, weak=False)
    signals.worker_ready.connect(node_ready, weak=False)
    signals.worker_shutdown.connect(node_shutdown, weak=False)


def _masked(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


worker_app = typer.Typer(help="Run a Celery worker.", invoke_without_command=True, add_completion=False)
worker_app.callback(invoke_without_command=True)(worker)

if __name__ == "__main__":
    worker_app()
