"""Idempotency keys with Stripe's semantics."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.errors import Conflict, InvalidInput
from gpt2_agent.store.engine_tables import IdempotencyKey


def test_same_key_same_body_returns_the_original(engine: Engine) -> None:
    first = engine.submit_task("sample.step", {"value": 1}, idempotency_key="k-1", scope="alice")
    again = engine.submit_task("sample.step", {"value": 1}, idempotency_key="k-1", scope="alice")
    assert first.created and not again.created and again.id == first.id
    assert engine.list_tasks().total == 1


def test_same_key_other_body_is_a_conflict(engine: Engine) -> None:
    engine.submit_task("sample.step", {"value": 1}, idempotency_key="k-2", scope="alice")
    with pytest.raises(Conflict, match="different request body"):
        engine.submit_task("sample.step", {"value": 2}, idempotency_key="k-2", scope="alice")
    assert engine.list_tasks().total == 1


def test_keys_are_scoped_per_caller(engine: Engine) -> None:
    a = engine.submit_task("sample.step", {"value": 1}, idempotency_key="k-3", scope="alice")
    b = engine.submit_task("sample.step", {"value": 1}, idempotency_key="k-3", scope="bob")
    assert a.id != b.id


def test_expired_key_makes_a_new_request(engine: Engine) -> None:
    first = engine.submit_task("sample.step", {"value": 1}, idempotency_key="k-4")
    with engine.db.write_session() as session:
        for row in session.query(IdempotencyKey):
            row.expires_at = row.expires_at - dt.timedelta(days=2)
    second = engine.submit_task("sample.step", {"value": 1}, idempotency_key="k-4")
    assert second.created and second.id != first.id


def test_concurrent_same_key_creates_one_task(engine: Engine) -> None:
    results: list[int] = []
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        results.append(engine.submit_task("sample.step", {"value": 7}, idempotency_key="k-5").id)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert engine.list_tasks().total == 1


def test_runs_use_keys_too(engine: Engine) -> None:
    a = engine.start_run("sample-three", {"value": 1}, idempotency_key="r-1")
    b = engine.start_run("sample-three", {"value": 1}, idempotency_key="r-1")
    assert a.id == b.id and not b.created
    with pytest.raises(Conflict):
        engine.start_run("sample-three", {"value": 2}, idempotency_key="r-1")


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey", "nul\x00"])
def test_bad_keys_are_refused(engine: Engine, key: str) -> None:
    with pytest.raises(InvalidInput):
        engine.submit_task("sample.step", {}, idempotency_key=key)
