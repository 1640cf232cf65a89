"""Training runs through the API: queued as an engine task, curves and evaluation readable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gpt2_agent.config import Settings
from gpt2_agent.demo import generate_warehouse
from tests.api.conftest import Keys


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path) -> Settings:
    warehouse = tmp_path / "warehouse.db"
    generate_warehouse(f"sqlite:///{warehouse}", orders=600, seed=0)
    return settings.model_copy(update={"warehouse_url": f"sqlite:///{warehouse}"})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_train_from_the_api(client: TestClient, keys: Keys) -> None:
    configs = [c["name"] for c in client.get("/api/v1/training-configs", headers=keys.h("submitter")).json()]
    assert "order-audit.tiny.toml" in configs
    body = {"config": "order-audit.tiny.toml", "overrides": {"learning_rate": 0.003, "batch_size": 16}}
    assert client.post("/api/v1/training-runs", json=body, headers=keys.h("approver")).status_code == 403
    bad = client.post("/api/v1/training-runs", json={"config": "../x.toml"}, headers=keys.h("admin"))
    assert bad.status_code == 422
    unknown = client.post("/api/v1/training-runs", json={"config": "nope.toml"}, headers=keys.h("admin"))
    assert unknown.status_code == 422 and "shipped" in unknown.json()["detail"]
    negative = {"config": "order-audit.tiny.toml", "overrides": {"learning_rate": -1}}
    assert client.post("/api/v1/training-runs", json=negative, headers=keys.h("admin")).status_code == 422

    created = client.post("/api/v1/training-runs", json=body, headers=keys.h("admin"))
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    deadline = time.monotonic() + 240
    detail: dict[str, object] = {}
    while time.monotonic() < deadline:
        detail = client.get(f"/api/v1/training-runs/{run_id}", headers=keys.h("submitter")).json()
        if detail["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert detail["status"] == "succeeded", detail
    assert detail["history"] and any(p.get("val_loss") is not None for p in detail["history"])  # type: ignore[union-attr]
    evaluation = detail["evaluation"]
    assert isinstance(evaluation, dict) and "confusion_matrix" in evaluation and evaluation["reliability"]
    assert detail["registered_version"] == 1
    listed = client.get("/api/v1/training-runs", headers=keys.h("submitter")).json()
    assert listed["items"][0]["id"] == run_id
    assert client.get("/api/v1/training-runs/999", headers=keys.h("submitter")).status_code == 404
