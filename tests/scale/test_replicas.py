"""Two API replicas (``gpt2-agent serve --no-executor``) on one PostgreSQL with a Celery worker:
any replica serves any request; an approval decided on replica A shows on replica B's SSE
stream; idempotency keys hold across replicas. The test talks to the replicas directly (no
reverse proxy: the proxy only spreads requests, which is what alternating replicas does)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from gpt2_agent.client import ApiError, Client
from tests.scale import procs
from tests.scale.conftest import delete_queues
from tests.serverproc import cli_env, create_key


def read_sse(url: str, key: str, out: list[dict[str, Any]], done: threading.Event) -> None:
    """Collect SSE events (``event`` + parsed ``data``) until the stream ends."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=60)) as response:
            event: dict[str, Any] = {}
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event["event"] = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    event["data"] = json.loads(line.split(":", 1)[1])
                elif not line and event:
                    out.append(event)
                    if event.get("event") == "end":
                        return
                    event = {}
    finally:
        done.set()


def test_replicas_share_approvals_streams_and_idempotency(
    tmp_path: Path, pg_url: str, redis_url: str, prefix: str
) -> None:
    env = cli_env(
        tmp_path / "home",
        GPT2_AGENT_DATABASE_URL=pg_url,
        GPT2_AGENT_EXECUTOR="celery",
        GPT2_AGENT_BROKER_URL=redis_url,
        GPT2_AGENT_BROKER_QUEUE_PREFIX=prefix,
        GPT2_AGENT_PLUGINS='["tests.plugins.sample"]',
        GPT2_AGENT_WEB_SESSION_SECRET="same-secret-on-every-replica-0123456789",
    )
    alice = create_key(env, "submitter", "alice")
    bob = create_key(env, "approver", "bob")
    started: list[procs.Proc] = []
    try:
        worker = procs.Proc(
            [*procs.PY, "gpt2_agent.cli.worker", "-c", "1"], env, tmp_path / "worker.log"
        ).start()
        started.append(worker)
        a = procs.Api(env, tmp_path / "a.log")
        b = procs.Api(env, tmp_path / "b.log")
        started += [a, b]
        a.start()
        b.start()
        worker.wait_for(procs.READY)

        with Client(a.url, alice) as on_a, Client(b.url, alice) as on_b, Client(a.url, bob) as bob_on_a:
            # Any replica serves any request.
            task = on_b.submit_task("sample.step", {"value": 1})
            assert on_a.wait_task(task["id"], timeout=60)["output"] == {"value": 2}
            assert task["id"] in [t["id"] for t in on_a.list_tasks()["items"]]

            # Idempotency keys are in SQL: the retry on the other replica gets the original.
            first = httpx.post(
                f"{a.url}/api/v1/tasks",
                json={"type": "sample.step", "input": {"value": 7}},
                headers={"Authorization": f"Bearer {alice}", "Idempotency-Key": "order-7"},
            )
            again = httpx.post(
                f"{b.url}/api/v1/tasks",
                json={"type": "sample.step", "input": {"value": 7}},
                headers={"Authorization": f"Bearer {alice}", "Idempotency-Key": "order-7"},
            )
            assert first.status_code == 201 and again.status_code == 200
            assert again.json()["id"] == first.json()["id"]
            assert again.headers.get("Idempotent-Replayed") == "true"
            other = httpx.post(
                f"{b.url}/api/v1/tasks",
                json={"type": "sample.step", "input": {"value": 8}},
                headers={"Authorization": f"Bearer {alice}", "Idempotency-Key": "order-7"},
            )
            assert other.status_code in (409, 422), other.text

            # Approval decided on A, watched on B's event stream.
            run = on_a.start_run("sample-approval", {"value": 20})
            events: list[dict[str, Any]] = []
            ended = threading.Event()
            reader = threading.Thread(
                target=read_sse,
                args=(f"{b.url}/api/v1/runs/{run['id']}/events", alice, events, ended),
                daemon=True,
            )
            reader.start()
            procs.wait_until(
                lambda: on_b.get_run(run["id"])["status"] == "waiting_approval",
                what="run waiting for approval",
            )
            pending = [x for x in bob_on_a.list_approvals()["items"] if x["run_id"] == run["id"]]
            assert len(pending) == 1
            decided_at = time.monotonic()
            bob_on_a.decide(pending[0]["id"], "approve", "looks fine")
            assert ended.wait(60), f"B's stream did not end; got {events}"

        transitions = [e["data"] for e in events if e.get("event") == "transition"]
        approved = [t for t in transitions if t["actor"] == "bob" and t["to_state"] == "succeeded"]
        assert approved, transitions  # the approval step, decided on A, as seen from B
        assert any(
            t["run_id"] == run["id"] and t["task_id"] is None and t["to_state"] == "succeeded"
            for t in transitions
        )
        assert time.monotonic() - decided_at < 60
        with Client(b.url, alice) as on_b:
            final = on_b.get_run(run["id"])
        assert final["status"] == "succeeded" and final["output"] == {"value": 22, "reviewed": True}
    except ApiError as exc:
        raise AssertionError(f"API error: {exc}") from None
    finally:
        for proc in started:
            proc.stop()
        delete_queues(redis_url, prefix, ["default"])
