"""The Celery executor against the real brokers (Redis and RabbitMQ) and the real PostgreSQL.

The API side and the worker side are two engines on one database, as in two processes; the
worker is Celery's own in-process test worker (threads pool) so these stay fast. Real worker
processes, kills and stops are in test_worker_faults.py.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from gpt2_agent.config import Settings, load_settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors import load_executor
from gpt2_agent.engine.executors.celery import CeleryExecutor, WorkerRuntime
from gpt2_agent.engine.executors.celery_app import TASK_NAME, make_celery, queue_name
from gpt2_agent.store import create_database, upgrade
from tests.plugins import sample
from tests.scale.procs import wait_until


def make_settings(tmp_path: Path, pg_url: str, broker_url: str, prefix: str, **extra: Any) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        database_url=pg_url,
        executor="celery",
        broker_url=broker_url,
        broker_queue_prefix=prefix,
        lease_seconds=3.0,
        heartbeat_seconds=0.5,
        sweep_interval_seconds=0.3,
        dispatch_interval_seconds=0.2,
        **extra,
    )


def make_engine(settings: Settings) -> Engine:
    db = create_database(settings.database_url)
    upgrade(db)
    engine = Engine(db, settings)
    sample.register(engine, settings)
    return engine


@contextlib.contextmanager
def celery_worker(settings: Settings, queues: list[str]) -> Iterator[WorkerRuntime]:
    """An in-process Celery worker (threads) with its own engine, like one worker process."""
    engine = make_engine(settings)
    holder: dict[str, WorkerRuntime] = {}
    app = make_celery(settings, execute=lambda payload: holder["rt"].execute(payload))
    runtime = holder["rt"] = WorkerRuntime(engine, app, queues)
    runtime.start()
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            loglevel="WARNING",
            queues=[queue_name(settings, q) for q in queues],
            shutdown_timeout=30,
        ) as controller:
            hub = getattr(controller, "hub", None)
            if hub is not None:
                # The AMQP event loop only notices the shutdown flag on its next event: keep one coming.
                hub.call_repeatedly(0.2, lambda: None)
            yield runtime
    finally:
        runtime.stop()
        engine.db.dispose()


@pytest.fixture
def api_side(
    tmp_path: Path, pg_url: str, broker_url: str, prefix: str
) -> Iterator[tuple[Engine, CeleryExecutor]]:
    """The engine of an API process, publishing with ``load_executor("celery", ...)``."""
    engine = make_engine(make_settings(tmp_path, pg_url, broker_url, prefix))
    executor = load_executor("celery", engine)
    assert isinstance(executor, CeleryExecutor)
    executor.start()
    yield engine, executor
    executor.stop()
    engine.db.dispose()


def step_log(path: Path) -> tuple[collections.Counter[int], collections.Counter[int]]:
    starts: collections.Counter[int] = collections.Counter()
    dones: collections.Counter[int] = collections.Counter()
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, task_id, _ = line.split()
        (starts if kind == "start" else dones)[int(task_id)] += 1
    return starts, dones


def test_runs_and_tasks_complete_through_the_broker(
    api_side: tuple[Engine, CeleryExecutor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, executor = api_side
    log = tmp_path / "steps.log"
    monkeypatch.setenv("SAMPLE_LOG", str(log))
    run_ids = [engine.start_run("sample-three", {"value": i}).id for i in range(12)]
    task_ids = [engine.submit_task("sample.step", {"value": i}).id for i in range(4)]
    with celery_worker(engine.settings, ["default"]):
        wait_until(
            lambda: (
                all(engine.get_run(r).status == "succeeded" for r in run_ids)
                and all(engine.get_task(t).status == "succeeded" for t in task_ids)
            ),
            what="all runs and tasks succeeded",
        )
    assert sorted(engine.get_run(r).output["value"] for r in run_ids) == [i + 3 for i in range(12)]  # type: ignore[index]
    starts, dones = step_log(log)
    assert len(dones) == 12 * 3 + 4 and set(starts.values()) == {1} and set(dones.values()) == {1}
    # Every first step and standalone task went through the broker under its own Celery id.
    for task_id in task_ids:
        assert engine.get_task(task_id).external_id
    assert executor.dispatcher.published >= 16


def test_retries_are_published_again_when_their_backoff_ends(api_side: tuple[Engine, CeleryExecutor]) -> None:
    engine, _ = api_side
    task_id = engine.submit_task("sample.step", {"value": 1, "fail_times": 2}).id
    with celery_worker(engine.settings, ["default"]):
        wait_until(lambda: engine.get_task(task_id).status == "succeeded", what="task succeeded")
    task = engine.get_task(task_id)
    assert task.attempt == 3 and task.output == {"value": 2}


def test_duplicate_and_stale_messages_change_nothing(
    api_side: tuple[Engine, CeleryExecutor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, executor = api_side
    log = tmp_path / "steps.log"
    monkeypatch.setenv("SAMPLE_LOG", str(log))
    task_id = engine.submit_task("sample.step", {"value": 5}).id
    with celery_worker(engine.settings, ["default"]) as runtime:
        wait_until(lambda: engine.get_task(task_id).status == "succeeded", what="task succeeded")
        for _ in range(3):  # a broker redelivering, a republished message
            executor.app.send_task(
                TASK_NAME,
                args=[{"kind": "ExecuteTask", "task_id": task_id}],
                queue=queue_name(engine.settings, "default"),
            )
        assert runtime.execute({"kind": "ExecuteTask", "task_id": task_id}) == "nothing to claim"
        assert runtime.execute({"kind": "Other"}) == "malformed"
        time.sleep(1.0)
    starts, dones = step_log(log)
    assert starts[task_id] == 1 and dones[task_id] == 1
    assert engine.get_task(task_id).attempt == 1


def test_queues_are_routed_by_task_type(tmp_path: Path, pg_url: str, broker_url: str, prefix: str) -> None:
    settings = make_settings(tmp_path, pg_url, broker_url, prefix, task_queues={"sample.step": "special"})
    engine = make_engine(settings)
    executor = CeleryExecutor(engine)
    executor.start()
    try:
        task_id = engine.submit_task("sample.step", {"value": 1}).id
        assert engine.get_task(task_id).queue == "special"
        with celery_worker(settings, ["default"]):
            time.sleep(1.5)  # a worker on other queues never sees it
            assert engine.get_task(task_id).status == "queued"
        with celery_worker(settings, ["special"]):
            wait_until(lambda: engine.get_task(task_id).status == "succeeded", what="routed task succeeded")
    finally:
        executor.stop()
        engine.db.dispose()


def test_worker_sessions_cannot_hold_locks_while_frozen(tmp_path: Path, pg_url: str) -> None:
    """A worker stopped inside a transaction would keep its row locks from the sweeper; its
    sessions are ended by PostgreSQL after the idle-in-transaction timeout instead."""
    from sqlalchemy import text

    settings = make_settings(tmp_path, pg_url, "redis://127.0.0.1:1/0", "unused.")  # never connects
    engine = make_engine(settings)
    try:
        engine.db.dispose()
        WorkerRuntime(engine, make_celery(settings), ["default"])
        with engine.db.session() as session:
            assert session.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one() == "10s"
    finally:
        engine.db.dispose()
