"""Workflow, run and approval routes."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.api.conftest import Keys


def wait_run(client: TestClient, keys: Keys, run_id: int, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}", headers=keys.h("admin")).json()
        if run["status"] == status:
            return run  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {status}")


def test_workflow_run_with_approval(client: TestClient, keys: Keys) -> None:
    names = [w["name"] for w in client.get("/api/v1/workflows", headers=keys.h("submitter")).json()]
    assert "sample-approval" in names
    r = client.post(
        "/api/v1/workflows/sample-approval/runs",
        json={"input": {"value": 20}},
        headers={**keys.h("submitter"), "Idempotency-Key": "run-20"},
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    wait_run(client, keys, run_id, "waiting_approval")
    pending = client.get("/api/v1/approvals?status=pending", headers=keys.h("approver")).json()["items"]
    [item] = [a for a in pending if a["run_id"] == run_id]
    assert item["title"] == "Review value 21" and item["submitted_by"] == "alice"
    decide = f"/api/v1/approvals/{item['id']}/decision"
    assert client.post(decide, json={"decision": "approve"}, headers=keys.h("submitter")).status_code == 403
    assert client.post(decide, json={"decision": "maybe"}, headers=keys.h("approver")).status_code == 422
    ok = client.post(decide, json={"decision": "approve", "comment": "fine"}, headers=keys.h("approver"))
    assert ok.status_code == 200 and ok.json()["decided_by"] == "bob"
    assert client.post(decide, json={"decision": "reject"}, headers=keys.h("approver2")).status_code == 409
    run = wait_run(client, keys, run_id, "succeeded")
    assert run["output"] == {"value": 22, "reviewed": True}
    assert [t["step_name"] for t in run["tasks"]] == ["check", "review", "act"]  # type: ignore[index]
    replay = client.post(
        "/api/v1/workflows/sample-approval/runs",
        json={"input": {"value": 20}},
        headers={**keys.h("submitter"), "Idempotency-Key": "run-20"},
    )
    assert replay.status_code == 200 and replay.json()["id"] == run_id


def test_four_eyes_even_for_admin_submitters(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/api/v1/workflows/sample-approval/runs", json={"input": {"value": 20}}, headers=keys.h("admin")
    )
    run_id = r.json()["id"]
    wait_run(client, keys, run_id, "waiting_approval")
    [item] = client.get("/api/v1/approvals", headers=keys.h("admin")).json()["items"]
    assert (
        client.post(
            f"/api/v1/approvals/{item['id']}/decision", json={"decision": "approve"}, headers=keys.h("admin")
        ).status_code
        == 403
    )
    rej = client.post(
        f"/api/v1/approvals/{item['id']}/decision", json={"decision": "reject"}, headers=keys.h("approver")
    )
    assert rej.status_code == 200
    assert wait_run(client, keys, run_id, "rejected")["error"]


def test_bad_run_requests(client: TestClient, keys: Keys) -> None:
    h = keys.h("submitter")
    assert client.post("/api/v1/workflows/nope/runs", json={"input": {}}, headers=h).status_code == 404
    bad = client.post("/api/v1/workflows/sample-three/runs", json={"input": {"value": "x"}}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "input.value"
    assert client.post("/api/v1/workflows/Bad%20Name/runs", json={"input": {}}, headers=h).status_code == 422
    r = client.post("/api/v1/workflows/sample-three/runs", json={"input": {"value": 1}}, headers=h)
    assert client.get(f"/api/v1/runs/{r.json()['id']}", headers=keys.h("submitter2")).status_code == 404


def test_cancel_run(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/api/v1/workflows/sample-approval/runs", json={"input": {"value": 50}}, headers=keys.h("submitter")
    )
    run_id = r.json()["id"]
    wait_run(client, keys, run_id, "waiting_approval")
    assert (
        client.post(f"/api/v1/runs/{run_id}/cancel", headers=keys.h("submitter")).json()["status"]
        == "cancelled"
    )
    assert client.post(f"/api/v1/runs/{run_id}/cancel", headers=keys.h("submitter")).status_code == 409
    assert client.get("/api/v1/approvals?status=cancelled", headers=keys.h("approver")).json()["total"] == 1


def test_retry_a_failed_run_resumes_at_the_failed_step(client: TestClient, keys: Keys) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    from gpt2_agent.engine.workflows import parse_workflow

    engine.workflows.register(
        parse_workflow(
            "name: flaky-once\nsteps:\n  - {name: a, uses: sample.step}\n"
            "  - {name: b, uses: sample.step, with: {fail_times: 3}}\n"
        )
    )
    run_id = client.post("/api/v1/workflows/flaky-once/runs", json={}, headers=keys.h("submitter")).json()[
        "id"
    ]
    failed = wait_run(client, keys, run_id, "failed")
    assert client.post(f"/api/v1/runs/{run_id}/retry", headers=keys.h("submitter2")).status_code == 404
    retried = client.post(f"/api/v1/runs/{run_id}/retry", headers=keys.h("submitter"))
    assert retried.status_code == 200, retried.text
    done = wait_run(client, keys, run_id, "succeeded")
    step_b = next(t for t in done["tasks"] if t["step_name"] == "b")  # type: ignore[union-attr, attr-defined]
    assert step_b["attempt"] == 4 and failed["error"]
    assert client.post(f"/api/v1/runs/{run_id}/retry", headers=keys.h("submitter")).status_code == 409
    stats = client.get("/api/v1/stats", headers=keys.h("approver")).json()
    assert stats["runs"]["succeeded"] == 1 and len(stats["throughput"]) == 60
    assert sum(p["succeeded"] for p in stats["throughput"]) >= 2
    assert client.get("/api/v1/stats", headers=keys.h("submitter")).status_code == 403
