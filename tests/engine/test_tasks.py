"""Task lifecycle on SQLite and PostgreSQL: success, retries, permanent failure, timeouts, cancel."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from pydantic import BaseModel

from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.errors import Conflict, InvalidInput, UnknownTaskType
from gpt2_agent.engine.executors.local import LocalExecutor
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType
from tests.engine.conftest import wait_for


def states(engine: Engine, task_id: int) -> list[tuple[str | None, str]]:
    return [(e.from_state, e.to_state) for e in engine.task_events(task_id=task_id)]


def test_task_succeeds_and_every_transition_is_an_event(engine: Engine, executor: LocalExecutor) -> None:
    sub = engine.submit_task("sample.step", {"value": 41}, submitted_by="alice")
    wait_for(lambda: engine.get_task(sub.id).status == "succeeded")
    task = engine.get_task(sub.id)
    assert task.output == {"value": 42}
    assert task.attempt == 1
    assert states(engine, sub.id) == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    first = engine.task_events(task_id=sub.id)[0]
    assert first.actor == "alice" and first.at.tzinfo is not None


def test_transient_failures_retry_with_backoff(engine: Engine, executor: LocalExecutor) -> None:
    sub = engine.submit_task("sample.step", {"value": 1, "fail_times": 2})
    wait_for(lambda: engine.get_task(sub.id).status == "succeeded")
    task = engine.get_task(sub.id)
    assert task.attempt == 3
    retries = [e for e in engine.task_events(task_id=sub.id) if e.to_state == "queued" and e.from_state]
    assert len(retries) == 2 and "retry in" in retries[0].reason


def test_attempts_exhausted_and_permanent_errors_fail(engine: Engine, executor: LocalExecutor) -> None:
    exhausted = engine.submit_task("sample.step", {"fail_times": 5})
    permanent = engine.submit_task("sample.step", {"permanent": True})
    wait_for(lambda: engine.get_task(exhausted.id).status == "failed")
    wait_for(lambda: engine.get_task(permanent.id).status == "failed")
    assert engine.get_task(exhausted.id).attempt == 3
    assert "gave up after 3 attempts" in engine.task_events(task_id=exhausted.id)[-1].reason
    assert engine.get_task(permanent.id).attempt == 1
    assert "told to fail" in (engine.get_task(permanent.id).error or "")


def test_unknown_type_and_invalid_input_are_refused(engine: Engine) -> None:
    with pytest.raises(UnknownTaskType) as info:
        engine.submit_task("nope", {})
    assert "sample.step" in str(info.value)
    with pytest.raises(InvalidInput) as bad:
        engine.submit_task("sample.step", {"value": "not a number"})
    assert bad.value.errors[0]["field"] == "value"


def test_timeout_is_enforced_and_retried(engine: Engine, executor: LocalExecutor) -> None:
    class In(BaseModel):
        pass

    class Out(BaseModel):
        ok: bool

    def slow(ctx: TaskContext, _: In) -> Out:
        ctx.cancelled.wait(5)
        return Out(ok=True)

    engine.handlers.register(TaskType("slow", In, Out, slow, retry=RetryPolicy(2, 0.01), timeout_seconds=0.3))
    sub = engine.submit_task("slow", {})
    wait_for(lambda: engine.get_task(sub.id).status == "failed", timeout=20)
    task = engine.get_task(sub.id)
    assert task.attempt == 2 and "timed out" in (task.error or "")


def test_cancel_queued_and_running(engine: Engine, executor: LocalExecutor) -> None:
    running = engine.submit_task("sample.step", {"sleep": 5})
    wait_for(lambda: engine.get_task(running.id).status == "running")
    engine.cancel_task(running.id, by="bob")
    assert engine.get_task(running.id).status == "cancelled"
    with pytest.raises(Conflict):
        engine.cancel_task(running.id, by="bob")
    executor.stop()
    queued = engine.submit_task("sample.step", {})
    engine.cancel_task(queued.id, by="bob")
    task = engine.get_task(queued.id)
    assert task.status == "cancelled" and task.attempt == 0
    assert engine.task_events(task_id=queued.id)[-1].actor == "bob"


def test_fencing_rejects_a_stalled_worker(engine: Engine) -> None:
    """A worker whose lease expired cannot complete the task after another worker took it over."""
    sub = engine.submit_task("sample.step", {"value": 1})
    [first] = engine.claim("worker-a", 1)
    # Worker A stalls past its lease: the sweeper requeues, worker B claims.
    with engine.db.write_session() as session:
        from gpt2_agent.store.engine_tables import Task

        row = session.get(Task, sub.id)
        assert row is not None
        row.lease_until = row.lease_until - dt.timedelta(seconds=60)  # type: ignore[operator]
    report = engine.sweep()
    assert report.requeued == [sub.id]
    with engine.db.write_session() as session:
        row = session.get(Task, sub.id)
        assert row is not None
        row.run_at = row.run_at - dt.timedelta(seconds=60)
    [second] = engine.claim("worker-b", 1)
    assert second.attempt == 2
    assert engine.complete(first, {"value": 99}) == (False, None)
    assert engine.heartbeat([first]) == {sub.id}
    assert engine.complete(second, {"value": 2})[0] is True
    assert engine.get_task(sub.id).output == {"value": 2}


def test_concurrent_claims_never_take_the_same_task(engine: Engine) -> None:
    ids = [engine.submit_task("sample.step", {"value": i}).id for i in range(40)]
    taken: list[int] = []
    lock = threading.Lock()

    def grab(name: str) -> None:
        while True:
            claims = engine.claim(name, 3)
            if not claims:
                return
            with lock:
                taken.extend(c.task_id for c in claims)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(ids)
