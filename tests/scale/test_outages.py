"""Outages between processes and their services, made with a TCP proxy that the test cuts:

* the database goes away for a few seconds: API requests fail fast with 503, nothing is half
  written, and retries with the same Idempotency-Key afterwards create each task exactly once;
* the broker is down: submissions are still accepted and stored, and run once it is back.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.scale import procs
from tests.scale.conftest import delete_queues
from tests.scale.tcpproxy import TcpProxy
from tests.serverproc import cli_env, create_key


def submit(url: str, key: str, idem: str, value: int) -> tuple[int, float]:
    t0 = time.monotonic()
    try:
        response = httpx.post(
            f"{url}/api/v1/tasks",
            json={"type": "sample.step", "input": {"value": value}},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
            timeout=30,
        )
        status = response.status_code
    except httpx.HTTPError:
        status = 0
    return status, time.monotonic() - t0


def test_database_outage_fails_fast_and_writes_nothing_half(
    tmp_path: Path, pg_url: str, redis_url: str, prefix: str
) -> None:
    url = make_url(pg_url)
    proxy = TcpProxy(url.port or 5432)
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    env = cli_env(
        tmp_path / "home",
        GPT2_AGENT_DATABASE_URL=via_proxy,
        GPT2_AGENT_EXECUTOR="celery",
        GPT2_AGENT_BROKER_URL=redis_url,
        GPT2_AGENT_BROKER_QUEUE_PREFIX=prefix,
        GPT2_AGENT_PLUGINS='["tests.plugins.sample"]',
        GPT2_AGENT_DISPATCH_INTERVAL_SECONDS="0.5",
    )
    key = create_key(env, "submitter", "loader")
    api = procs.Api(env, tmp_path / "api.log")
    statuses: dict[str, int] = {}
    try:
        api.start()
        for i in range(5):
            statuses[f"k{i}"] = submit(api.url, key, f"k{i}", i)[0]
        assert set(statuses.values()) == {201}

        proxy.cut()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            outage = list(pool.map(lambda i: (i, *submit(api.url, key, f"k{i}", i)), range(5, 25)))
        ready = httpx.get(f"{api.url}/readyz", timeout=10)
        read = httpx.get(f"{api.url}/api/v1/tasks/1", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        for i, status, seconds in outage:
            statuses[f"k{i}"] = status
            assert status == 503, (i, status)
            assert seconds < 5.0, f"request {i} took {seconds:.1f}s to fail"
        assert ready.status_code == 503 and read.status_code == 503
        assert read.headers.get("Retry-After")
        assert "database unavailable" in read.json()["detail"]
        time.sleep(2.0)  # a few seconds without the database

        proxy.restore()

        def answers() -> bool:
            return httpx.get(f"{api.url}/readyz", timeout=10).status_code == 200

        procs.wait_until(answers, timeout=30, what="API ready again after the outage")
        # Clients retry what failed, with the same keys: each task is created exactly once.
        for i in range(0, 25):
            status, _ = submit(api.url, key, f"k{i}", i)
            assert status in (200, 201), (i, status)
            assert status == 200 or statuses[f"k{i}"] == 503
    finally:
        api.stop()
        proxy.cut()
        delete_queues(redis_url, prefix, ["default"])

    admin = create_engine(pg_url)
    try:
        with admin.connect() as conn:
            tasks = conn.execute(text("SELECT id, input FROM tasks ORDER BY id")).all()
            orphans = conn.execute(
                text(
                    "SELECT count(*) FROM tasks t WHERE NOT EXISTS "
                    "(SELECT 1 FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'queued')"
                )
            ).scalar_one()
            dangling = conn.execute(
                text(
                    "SELECT count(*) FROM idempotency_keys k WHERE k.resource_type = 'task' "
                    "AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = k.resource_id)"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    assert sorted(t.input["value"] for t in tasks) == list(range(25))
    assert orphans == 0 and dangling == 0


def test_broker_down_accepts_and_stores_then_runs_when_it_is_back(
    tmp_path: Path, pg_url: str, redis_url: str, prefix: str
) -> None:
    broker = make_url(redis_url)
    proxy = TcpProxy(broker.port or 6379, listen=False)  # the broker, as every process sees it: down
    env = cli_env(
        tmp_path / "home",
        GPT2_AGENT_DATABASE_URL=pg_url,
        GPT2_AGENT_EXECUTOR="celery",
        GPT2_AGENT_BROKER_URL=broker.set(port=proxy.port).render_as_string(hide_password=False),
        GPT2_AGENT_BROKER_QUEUE_PREFIX=prefix,
        GPT2_AGENT_PLUGINS='["tests.plugins.sample"]',
        GPT2_AGENT_DISPATCH_INTERVAL_SECONDS="0.5",
    )
    key = create_key(env, "submitter", "loader")
    api = procs.Api(env, tmp_path / "api.log")
    worker = procs.Proc([*procs.PY, "gpt2_agent.cli.worker", "-c", "1"], env, tmp_path / "worker.log")
    headers = {"Authorization": f"Bearer {key}"}

    def statuses() -> set[str]:
        page = httpx.get(f"{api.url}/api/v1/tasks", params={"limit": 50}, headers=headers, timeout=10).json()
        assert page["total"] == 10
        return {t["status"] for t in page["items"]}

    try:
        api.start()
        worker.start()  # it waits for the broker
        results = [submit(api.url, key, f"b{i}", i) for i in range(10)]
        assert [s for s, _ in results] == [201] * 10
        assert max(t for _, t in results) < 3.0  # publishing never holds up the request
        time.sleep(3.0)
        assert statuses() == {"queued"}
        api.wait_for("stay queued in the database")

        proxy.restore()  # the broker is back
        procs.wait_until(
            lambda: statuses() == {"succeeded"}, timeout=90, what="tasks ran after the broker came back"
        )
    finally:
        worker.stop()
        api.stop()
        proxy.cut()
        delete_queues(redis_url, prefix, ["default"])
