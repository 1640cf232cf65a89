"""The outbox that feeds Celery: every queued task gets a message, once per attempt; a broker error
loses nothing; a lost message is sent again. The broker is faked at the seam (the publish
function); the database is real (SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors.outbox import Dispatcher, Outbox, Publication
from gpt2_agent.store import Database
from gpt2_agent.store.dispatch_tables import TaskDispatch
from gpt2_agent.store.engine_tables import Task
from tests.plugins import sample


class FakeBroker:
    """Records publications; ``down`` makes publishing raise like an unreachable broker."""

    def __init__(self) -> None:
        self.sent: list[Publication] = []
        self.down = False
        self.lock = threading.Lock()

    def publish(self, pub: Publication) -> None:
        if self.down:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        with self.lock:
            self.sent.append(pub)


def make_engine(database: Database, settings: Settings, **overrides: object) -> Engine:
    engine = Engine(database, settings.model_copy(update=overrides))
    sample.register(engine, engine.settings)
    return engine


def dispatcher(engine: Engine, broker: FakeBroker) -> Dispatcher:
    return Dispatcher(Outbox(engine), broker.publish, interval=0.05)


def dispatch_row(database: Database, task_id: int) -> TaskDispatch | None:
    with database.session() as session:
        return session.get(TaskDispatch, task_id)


def test_each_queued_task_is_published_once_with_its_message_id(
    database: Database, settings: Settings
) -> None:
    engine = make_engine(database, settings)
    broker = FakeBroker()
    disp = dispatcher(engine, broker)
    engine.on_queued(disp.notify)
    ids = [engine.submit_task("sample.step", {"value": i}).id for i in range(5)]
    assert disp.flush(ids) == 5
    assert disp.flush(ids) == 0 and disp.flush() == 0  # nothing new to send
    assert sorted(p.task_id for p in broker.sent) == ids
    for pub in broker.sent:
        assert pub.attempt == 0 and pub.queue == "default"
        assert engine.get_task(pub.task_id).external_id == pub.message_id


def test_the_thread_publishes_after_commit_and_sweeps_the_rest(
    database: Database, settings: Settings
) -> None:
    engine = make_engine(database, settings)
    broker = FakeBroker()
    early = engine.submit_task("sample.step", {}).id  # queued before anyone listened
    disp = dispatcher(engine, broker)
    engine.on_queued(disp.notify)
    disp.start()
    try:
        late = engine.start_run("sample-three", {"value": 1}).id
        deadline = time.monotonic() + 10
        while len(broker.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        disp.stop()
    with database.session() as session:
        first_step = session.scalars(select(Task.id).where(Task.run_id == late)).one()
    assert sorted(p.task_id for p in broker.sent) == sorted([early, first_step])


def test_two_dispatchers_never_send_the_same_publication(database: Database, settings: Settings) -> None:
    engine = make_engine(database, settings)
    ids = [engine.submit_task("sample.step", {"value": i}).id for i in range(120)]
    broker = FakeBroker()
    a, b = dispatcher(engine, broker), dispatcher(engine, broker)
    threads = [threading.Thread(target=d.flush) for d in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(p.task_id for p in broker.sent)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}


def test_broker_down_keeps_tasks_and_sends_them_when_it_is_back(
    database: Database, settings: Settings
) -> None:
    engine = make_engine(database, settings)
    broker = FakeBroker()
    disp = dispatcher(engine, broker)
    broker.down = True
    ids = [engine.submit_task("sample.step", {"value": i}).id for i in range(3)]
    assert disp.flush(ids) == 0
    assert disp.failures == 1
    row = dispatch_row(database, ids[0])
    assert row is not None and row.published_at is None  # released: known not to be sent
    assert all(engine.get_task(i).status == "queued" for i in ids)
    broker.down = False
    assert disp.flush() == 3
    assert sorted(p.task_id for p in broker.sent) == ids


def test_a_requeued_task_gets_a_new_message(database: Database, settings: Settings) -> None:
    engine = make_engine(database, settings)
    broker = FakeBroker()
    disp = dispatcher(engine, broker)
    task_id = engine.submit_task("sample.step", {"value": 1}).id
    assert disp.flush([task_id]) == 1
    claim = engine.claim_task(task_id, "w1")
    assert claim is not None
    engine.fail(claim, "flaky", retryable=True)  # back to queued after a 0.05 s backoff
    time.sleep(0.1)
    assert disp.flush() == 1
    first, second = broker.sent
    assert (first.attempt, second.attempt) == (0, 1)
    assert first.message_id != second.message_id
    assert engine.get_task(task_id).external_id == second.message_id


def test_a_lost_message_is_sent_again_after_the_republish_window(
    database: Database, settings: Settings
) -> None:
    engine = make_engine(database, settings, dispatch_republish_seconds=0.2)
    broker = FakeBroker()
    disp = dispatcher(engine, broker)
    task_id = engine.submit_task("sample.step", {}).id
    assert disp.flush() == 1
    assert disp.flush() == 0
    time.sleep(0.3)  # the broker "lost" it: still queued after the window
    assert disp.flush() == 1
    row = dispatch_row(database, task_id)
    assert row is not None and row.publications == 2


def test_claimed_or_finished_tasks_are_not_published(database: Database, settings: Settings) -> None:
    engine = make_engine(database, settings)
    broker = FakeBroker()
    disp = dispatcher(engine, broker)
    running = engine.submit_task("sample.step", {}).id
    cancelled = engine.submit_task("sample.step", {}).id
    assert engine.claim_task(running, "w1") is not None
    engine.cancel_task(cancelled, by="tester")
    assert disp.flush() == 0


def test_task_types_are_routed_to_queues_by_configuration(database: Database, settings: Settings) -> None:
    engine = make_engine(database, settings, task_queues={"sample.step": "special"})
    broker = FakeBroker()
    task_id = engine.submit_task("sample.step", {}).id
    assert engine.get_task(task_id).queue == "special"
    assert dispatcher(engine, broker).flush() == 1
    assert broker.sent[0].queue == "special"


@pytest.mark.parametrize("when", ["before", "after"])
def test_routing_applies_to_types_registered_before_and_after(
    database: Database, settings: Settings, when: str
) -> None:
    engine = Engine(database, settings)
    if when == "before":
        sample.register(engine, settings)
        engine.handlers.route({"sample.step": "gpu"})
    else:
        engine.handlers.route({"sample.step": "gpu"})
        sample.register(engine, settings)
    assert engine.handlers.get("sample.step").queue == "gpu"


def test_migration_matches_the_table(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gpt2_agent.store import Base, tables  # noqa: F401  (registers every table)

    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "'task_dispatch'" in repr(d)] == []
