"""Celery worker processes on PostgreSQL: one worker SIGKILLed, another SIGSTOPped past its lease,
and a single prefork child SIGKILLed, all in the middle of a batch of workflow runs. Every run
completes, every step is recorded as finished exactly once, and the steps the stopped worker held
are finished by another worker (its late results are fenced out)."""

from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gpt2_agent.api.app import build_engine
from gpt2_agent.config import load_settings
from gpt2_agent.engine.executors.celery import CeleryExecutor
from gpt2_agent.store.engine_tables import Task, TaskEvent
from tests.scale import procs
from tests.serverproc import cli_env

RUNS = int(os.environ.get("GPT2_AGENT_SCALE_RUNS", "40"))
LEASE = 3.0


def group_pids(pgid: int) -> set[int]:
    """Pids of a process group (a worker and its prefork children)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                pids.add(int(entry.name))
    return pids


def owner_pid(lease_owner: str | None) -> int | None:
    # Worker ids look like "celery:<host>:<pid>:<random>".
    return int(lease_owner.split(":")[2]) if lease_owner else None


def done_lines(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("done")) if log.exists() else 0


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_killed_and_stopped_workers_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, pg_url: str, prefix: str, broker: str
) -> None:
    from tests.scale.conftest import delete_queues, require_broker

    broker_url = require_broker(broker)
    log = tmp_path / "steps.log"
    env = cli_env(
        tmp_path / "home",
        GPT2_AGENT_DATABASE_URL=pg_url,
        GPT2_AGENT_EXECUTOR="celery",
        GPT2_AGENT_BROKER_URL=broker_url,
        GPT2_AGENT_BROKER_QUEUE_PREFIX=prefix,
        GPT2_AGENT_PLUGINS='["tests.plugins.sample"]',
        GPT2_AGENT_LEASE_SECONDS=str(LEASE),
        GPT2_AGENT_HEARTBEAT_SECONDS="0.5",
        GPT2_AGENT_SWEEP_INTERVAL_SECONDS="0.5",
        GPT2_AGENT_DISPATCH_INTERVAL_SECONDS="0.5",
        SAMPLE_LOG=str(log),
    )
    settings = load_settings(
        home=tmp_path / "home",
        database_url=pg_url,
        executor="celery",
        broker_url=broker_url,
        broker_queue_prefix=prefix,
        plugins=["tests.plugins.sample"],
        lease_seconds=LEASE,
        heartbeat_seconds=0.5,
        dispatch_interval_seconds=0.5,
    )
    engine, _ = build_engine(settings)  # the "API": queues runs and publishes them
    publisher = CeleryExecutor(engine)
    publisher.start()
    workers: list[procs.Proc] = []
    try:
        a = procs.Proc(
            [*procs.PY, "gpt2_agent.cli.worker", "-c", "2", "-n", f"a-{prefix}@test"], env, tmp_path / "a.log"
        ).start()
        b = procs.Proc(
            [*procs.PY, "gpt2_agent.cli.worker", "-c", "2", "-n", f"b-{prefix}@test"], env, tmp_path / "b.log"
        ).start()
        workers += [a, b]
        a.wait_for(procs.READY, 2)
        b.wait_for(procs.READY, 2)

        run_ids = [engine.start_run("sample-three", {"value": i, "sleep": 0.3}).id for i in range(RUNS)]
        procs.wait_until(lambda: done_lines(log) >= RUNS // 4, what="work in flight")

        # 1. SIGKILL worker A (main process and children); a supervisor would start a new one.
        a.kill()

        # 2. SIGSTOP worker B while it holds steps, for longer than a lease.
        assert b.proc is not None
        b_pids = group_pids(b.proc.pid)

        def running() -> dict[int, tuple[str | None, int]]:
            with engine.db.session() as s:
                rows = s.execute(
                    select(Task.id, Task.lease_owner, Task.attempt).where(Task.status == "running")
                ).all()
            return {tid: (owner, attempt) for tid, owner, attempt in rows}

        def b_running() -> dict[int, int]:
            """Steps B holds: task id -> the attempt it claimed."""
            return {tid: att for tid, (owner, att) in running().items() if owner_pid(owner) in b_pids}

        procs.wait_until(lambda: bool(b_running()), interval=0.02, what="worker B holding a step")
        b.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        held_by_b = b_running()
        a2 = procs.Proc(
            [*procs.PY, "gpt2_agent.cli.worker", "-c", "2", "-n", f"a2-{prefix}@test"],
            env,
            tmp_path / "a2.log",
        ).start()
        workers.append(a2)
        a2.wait_for(procs.READY, 2)

        def taken_over() -> bool:
            now = running()
            return all(now.get(tid, (None, -1))[1] != att for tid, att in held_by_b.items())

        # A2's sweeper requeues B's expired steps and A2 runs them, while B is still stopped.
        procs.wait_until(taken_over, timeout=120, interval=0.1, what="B's steps taken over")
        time.sleep(max(0.0, LEASE + 1 - (time.monotonic() - stopped_at)))

        # 3. SIGKILL one prefork child of A2 in the middle of a step.
        assert a2.proc is not None
        children = group_pids(a2.proc.pid) - {a2.proc.pid}
        with engine.db.session() as s:
            owners = s.scalars(select(Task.lease_owner).where(Task.status == "running")).all()
        busy = [p for p in (owner_pid(o) for o in owners) if p in children]
        if busy:
            os.kill(busy[0], signal.SIGKILL)
        b.signal(signal.SIGCONT)

        def finished() -> bool:
            return all(engine.get_run(r).status in ("succeeded", "failed") for r in run_ids)

        procs.wait_until(finished, timeout=150, interval=0.5, what="every run finished")
        time.sleep(1.0)  # let B's late, fenced-out completions land (they must change nothing)

        runs = [engine.get_run(r) for r in run_ids]
        assert [r.status for r in runs] == ["succeeded"] * RUNS, [r.error for r in runs if r.error]
        assert sorted(r.output["value"] for r in runs) == [i + 3 for i in range(RUNS)]  # type: ignore[index]

        with engine.db.session() as s:
            tasks = {t.id: t for t in s.scalars(select(Task).where(Task.run_id.in_(run_ids)))}
            succeeded = s.execute(
                select(TaskEvent.task_id, TaskEvent.actor).where(
                    TaskEvent.to_state == "succeeded", TaskEvent.task_id.in_(list(tasks))
                )
            ).all()
        assert len(tasks) == RUNS * 3
        per_task = collections.Counter(tid for tid, _ in succeeded)
        assert set(per_task.values()) == {1}, "a step was recorded as finished more than once"
        assert sorted(per_task) == sorted(tasks)

        starts: collections.Counter[int] = collections.Counter()
        attempts_started: dict[int, set[int]] = collections.defaultdict(set)
        for line in log.read_text().splitlines():
            kind, task_id, attempt = line.split()
            if kind == "start":
                starts[int(task_id)] += 1
                attempts_started[int(task_id)].add(int(attempt))
        for task in tasks.values():
            # Each execution is one claim; a finished step never starts again.
            assert starts[task.id] == task.attempt, (task.id, starts[task.id], task.attempt)
            assert attempts_started[task.id] == set(range(1, task.attempt + 1))

        # The attempts B held when it stopped were taken over: a later attempt is the one recorded
        # (usually run by another worker; B may legitimately claim a later attempt after SIGCONT).
        assert held_by_b
        for tid, attempt in held_by_b.items():
            assert tasks[tid].attempt > attempt
        assert "fenced out" in b.text() or "lost lease" in b.text()
        assert any(t.attempt > 1 for t in tasks.values())
    finally:
        for proc in workers:
            proc.kill()
        publisher.stop()
        engine.db.dispose()
        delete_queues(broker_url, prefix, ["default"])
