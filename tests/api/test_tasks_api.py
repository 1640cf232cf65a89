"""Task routes: submission, idempotency, auth, roles, bad input, SSE."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Keys


def wait_status(client: TestClient, keys: Keys, task_id: int, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        task = client.get(f"/api/v1/tasks/{task_id}", headers=keys.h("admin")).json()
        if task["status"] == status:
            return task  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {status}")


def test_submit_run_and_read(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/api/v1/tasks", json={"type": "sample.step", "input": {"value": 1}}, headers=keys.h("submitter")
    )
    assert r.status_code == 201, r.text
    task = wait_status(client, keys, r.json()["id"], "succeeded")
    assert task["output"] == {"value": 2} and task["submitted_by"] == "alice"


def test_idempotency_key_replays_and_conflicts(client: TestClient, keys: Keys) -> None:
    body = {"type": "sample.step", "input": {"value": 5}}
    h = {**keys.h("submitter"), "Idempotency-Key": "order-5"}
    first = client.post("/api/v1/tasks", json=body, headers=h)
    again = client.post("/api/v1/tasks", json=body, headers=h)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    clash = client.post("/api/v1/tasks", json={"type": "sample.step", "input": {"value": 6}}, headers=h)
    assert clash.status_code == 409 and "different request body" in clash.json()["detail"]


def test_unknown_type_lists_known_ones(client: TestClient, keys: Keys) -> None:
    r = client.post("/api/v1/tasks", json={"type": "nope", "input": {}}, headers=keys.h("submitter"))
    assert r.status_code == 422
    assert "sample.step" in r.json()["detail"] and "send_email" in r.json()["errors"][0]["known"]


def test_invalid_input_names_the_field(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/api/v1/tasks", json={"type": "sample.step", "input": {"value": "x"}}, headers=keys.h("submitter")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "value"


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"{", "application/json"),
        (b'{"a":1,}', "application/json"),
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b'{"type": 5, "input": {}}', "application/json"),
        (b'{"type": "sample.step", "input": []}', "application/json"),
        (b'{"type": "sample.step", "input": {}, "extra": 1}', "application/json"),
        (b'{"type": "sample.step\\u0000", "input": {}}', "application/json"),
        (b'{"type": "sample.step", "input": {"value": NaN}}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"type=x", "text/plain"),
        (('{"type": "' + "a" * 5000 + '", "input": {}}').encode(), "application/json"),
    ],
)
def test_malformed_bodies_get_4xx(client: TestClient, keys: Keys, body: bytes, ctype: str) -> None:
    r = client.post("/api/v1/tasks", content=body, headers={**keys.h("submitter"), "Content-Type": ctype})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["detail"]


def test_body_over_limit_is_413(client: TestClient, keys: Keys) -> None:
    big = b'{"type": "sample.step", "input": {"pad": "' + b"x" * 2_000_000 + b'"}}'
    r = client.post(
        "/api/v1/tasks", content=big, headers={**keys.h("submitter"), "Content-Type": "application/json"}
    )
    assert r.status_code == 413


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer nope", "Basic abc"])
def test_missing_or_invalid_key_is_401(client: TestClient, keys: Keys, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = client.get("/api/v1/tasks", headers=headers)
    assert r.status_code == 401


def test_revoked_key_stops_working(client: TestClient, keys: Keys) -> None:
    made = client.post(
        "/api/v1/keys", json={"name": "temp", "role": "submitter"}, headers=keys.h("admin")
    ).json()
    h = {"Authorization": f"Bearer {made['key']}"}
    assert client.get("/api/v1/me", headers=h).json() == {
        "name": "temp",
        "role": "submitter",
        "key_id": made["id"],
    }
    assert client.delete(f"/api/v1/keys/{made['id']}", headers=keys.h("admin")).status_code == 200
    assert client.get("/api/v1/me", headers=h).status_code == 401
    listed = client.get("/api/v1/keys", headers=keys.h("admin")).json()
    assert all("key" not in k and "key_hash" not in k for k in listed)


def test_roles_and_ownership(client: TestClient, keys: Keys) -> None:
    r = client.post("/api/v1/tasks", json={"type": "sample.step", "input": {}}, headers=keys.h("submitter"))
    task_id = r.json()["id"]
    assert client.get(f"/api/v1/tasks/{task_id}", headers=keys.h("submitter2")).status_code == 404
    assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=keys.h("submitter2")).status_code == 404
    assert client.get(f"/api/v1/tasks/{task_id}", headers=keys.h("approver")).status_code == 200
    assert client.get("/api/v1/tasks", headers=keys.h("submitter2")).json()["total"] == 0
    assert client.get("/api/v1/approvals", headers=keys.h("submitter")).status_code == 403
    assert (
        client.post(
            "/api/v1/keys", json={"name": "x", "role": "admin"}, headers=keys.h("approver")
        ).status_code
        == 403
    )
    assert client.get("/api/v1/tasks/999999", headers=keys.h("admin")).status_code == 404


def test_list_filters_and_paginates(client: TestClient, keys: Keys) -> None:
    for i in range(5):
        client.post(
            "/api/v1/tasks", json={"type": "sample.step", "input": {"value": i}}, headers=keys.h("submitter")
        )
    page = client.get("/api/v1/tasks?limit=2&offset=1&type=sample.step", headers=keys.h("submitter")).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["limit"] == 2
    assert client.get("/api/v1/tasks?status=bogus", headers=keys.h("admin")).status_code == 422
    assert client.get("/api/v1/tasks?limit=0", headers=keys.h("admin")).status_code == 422
    assert client.get("/api/v1/tasks?type=%00", headers=keys.h("admin")).status_code == 422


def test_events_as_json_and_sse(client: TestClient, keys: Keys) -> None:
    r = client.post("/api/v1/tasks", json={"type": "sample.step", "input": {}}, headers=keys.h("submitter"))
    task_id = r.json()["id"]
    wait_status(client, keys, task_id, "succeeded")
    events = client.get(
        f"/api/v1/tasks/{task_id}/events", headers={**keys.h("submitter"), "Accept": "application/json"}
    ).json()
    assert [e["to_state"] for e in events] == ["queued", "running", "succeeded"]
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events", headers=keys.h("submitter")) as stream:
        text = "".join(stream.iter_text())
    assert text.count("event: transition") == 3 and "event: end" in text and '"to_state": "succeeded"' in text


def test_health_ready_metrics(client: TestClient, keys: Keys) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["checks"]["database"] == "ok"
    r = client.post("/api/v1/tasks", json={"type": "sample.step", "input": {}}, headers=keys.h("submitter"))
    wait_status(client, keys, r.json()["id"], "succeeded")
    metrics = client.get("/metrics").text
    assert 'gpt2_agent_tasks{state="succeeded",type="sample.step"} 1.0' in metrics
    assert "gpt2_agent_step_duration_seconds_bucket" in metrics
