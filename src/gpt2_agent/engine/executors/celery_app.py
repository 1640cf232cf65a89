"""The Celery application: broker settings, the one task it carries, and queue naming.

Celery is only the transport. A message is an :class:`~gpt2_agent.engine.workloads.ExecuteTask`
(``{"kind": "ExecuteTask", "task_id": 42}``, JSON, never pickle); the worker that receives it
claims the task in SQL with a fenced lease, so a duplicate or late message finds nothing to claim.
Messages are acknowledged after the step ran (``acks_late``) and given back to the broker when a
worker process dies (``task_reject_on_worker_lost``), and each worker process reserves at most
the message it is running (prefetch 1): a stopped worker holds no one else's work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from gpt2_agent.config import Settings

TASK_NAME = "gpt2_agent.execute_task"

# Sets how the worker's task function reaches the process's engine; installed by the worker.
ExecuteFn = Callable[[dict[str, Any]], str]


def queue_name(settings: Settings, queue: str) -> str:
    """The broker-side name of an engine queue (``broker_queue_prefix`` + queue)."""
    return f"{settings.broker_queue_prefix}{queue}"


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0] in ("redis", "rediss", "redis+socket")


def make_celery(settings: Settings, execute: ExecuteFn | None = None) -> Celery:
    """A Celery app for ``settings.broker_url``; with ``execute`` it can also consume (a worker).

    Publishing fails fast when the broker is down (two quick retries, short connect timeouts):
    the task stays queued in SQL and the dispatcher publishes it once the broker is back.
    """
    app = Celery("gpt2_agent", broker=settings.broker_url, set_as_current=False)
    transport: dict[str, Any] = {}
    if is_redis(settings.broker_url):
        # Unacknowledged messages come back after this long on Redis; a step running longer gets a
        # duplicate message, which finds the task already claimed and is dropped.
        transport.update(visibility_timeout=3600, socket_connect_timeout=3, socket_timeout=10)
        if settings.broker_queue_prefix:
            # Redis also keeps bookkeeping keys (unacked messages, bindings) outside the queues.
            transport["global_keyprefix"] = settings.broker_queue_prefix
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=is_redis(settings.broker_url),
        task_default_queue=queue_name(settings, "default"),
        task_create_missing_queues=True,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        broker_connection_timeout=3.0,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # workers wait for the broker forever
        broker_transport_options=transport,
        broker_heartbeat=30,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        # Building the engine in a fresh child (imports, first connection) can take a few seconds
        # on a busy machine; Celery's default of 4 s would kill it in a loop.
        worker_proc_alive_timeout=60.0,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    if execute is not None:
        # shared=False: the task belongs to this app only (tests build several apps in one process).
        @app.task(name=TASK_NAME, shared=False, acks_late=True, reject_on_worker_lost=True)
        def execute_task(payload: dict[str, Any]) -> str:
            return execute(payload)

    return app
