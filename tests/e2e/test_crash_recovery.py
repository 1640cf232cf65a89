"""kill -9 of the server in the middle of 50 running workflows: every run finishes after a
restart, and no completed step runs again (real processes, SQLite and PostgreSQL)."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from gpt2_agent.client import Client
from tests.conftest import PgSchema, require_postgres
from tests.serverproc import Server, cli_env, create_key

RUNS = 50


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_minus_nine_mid_flight(tmp_path: Path, backend: str) -> None:
    schema = None
    extra = {}
    if backend == "postgres":
        require_postgres()
        schema = PgSchema()
        extra["GPT2_AGENT_DATABASE_URL"] = schema.url
    log = tmp_path / "steps.log"
    env = cli_env(
        tmp_path / "home",
        GPT2_AGENT_PLUGINS='["tests.plugins.sample"]',
        GPT2_AGENT_LEASE_SECONDS="3",
        GPT2_AGENT_HEARTBEAT_SECONDS="1",
        GPT2_AGENT_SWEEP_INTERVAL_SECONDS="0.5",
        GPT2_AGENT_EXECUTOR_CONCURRENCY="8",
        SAMPLE_LOG=str(log),
        **extra,
    )
    try:
        key = create_key(env, "submitter", "loader")
        server = Server(env, tmp_path / "server.log")
        server.start()
        with Client(server.url, key) as client:
            run_ids = [
                client.start_run("sample-three", {"value": i, "sleep": 0.3}, idempotency_key=f"crash-{i}")[
                    "id"
                ]
                for i in range(RUNS)
            ]
            # Wait until work is genuinely in flight: some steps done, some running.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                lines = log.read_text().splitlines() if log.exists() else []
                if sum(1 for x in lines if x.startswith("done")) >= 20:
                    break
                time.sleep(0.05)
        server.kill()
        running_at_kill = sum(1 for x in log.read_text().splitlines() if x.startswith("start")) - sum(
            1 for x in log.read_text().splitlines() if x.startswith("done")
        )
        assert running_at_kill > 0, "the kill should interrupt running steps"

        server.start()
        with Client(server.url, key) as client:
            deadline = time.monotonic() + 120
            pending = set(run_ids)
            while pending and time.monotonic() < deadline:
                pending = {r for r in pending if client.get_run(r)["status"] not in ("succeeded", "failed")}
                time.sleep(0.2)
            assert not pending, f"{len(pending)} runs did not finish"
            runs = [client.get_run(r) for r in run_ids]
        server.stop()

        assert all(r["status"] == "succeeded" for r in runs), [
            r["error"] for r in runs if r["status"] != "succeeded"
        ]
        assert sorted(r["output"]["value"] for r in runs) == [i + 3 for i in range(RUNS)]
        starts: collections.Counter[int] = collections.Counter()
        dones: collections.Counter[int] = collections.Counter()
        start_attempts: dict[int, set[int]] = collections.defaultdict(set)
        for line in log.read_text().splitlines():
            kind, task_id, attempt = line.split()
            (starts if kind == "start" else dones)[int(task_id)] += 1
            if kind == "start":
                start_attempts[int(task_id)].add(int(attempt))
        tasks = [t for r in runs for t in r["tasks"]]
        assert len(tasks) == RUNS * 3
        for task in tasks:
            # Each execution corresponds to exactly one claim: no step ran outside its claims,
            # and once a step completed (attempt N), it never started again.
            assert starts[task["id"]] == task["attempt"], task
            assert start_attempts[task["id"]] == set(range(1, task["attempt"] + 1))
            assert dones[task["id"]] >= 1
        assert any(t["attempt"] > 1 for t in tasks), "some steps should have been retried after the crash"
    finally:
        if schema is not None:
            schema.drop()
