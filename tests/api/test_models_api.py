"""Registry routes: list, detail, promote (admin, gate), download bundle that loads back."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import torch
from fastapi.testclient import TestClient
from transformers import GPT2ForSequenceClassification

from gpt2_agent.registry import Registry
from tests.api.conftest import Keys
from tests.registry.conftest import tiny_model, tiny_tokenizer


def register(registry: Registry, tmp_path: Path, seed: int, auc: float) -> int:
    folder = tmp_path / f"out{seed}"
    tiny_model(seed).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps({"roc_auc": auc}))
    return registry.register(folder, "order-audit", eval_set_hash="e1", created_by="test").version


def test_models_routes(client: TestClient, keys: Keys, tmp_path: Path) -> None:
    registry: Registry = client.app.state.registry  # type: ignore[attr-defined]
    v1 = register(registry, tmp_path, 0, 0.80)
    v2 = register(registry, tmp_path, 1, 0.70)
    v3 = register(registry, tmp_path, 2, 0.90)
    [model] = client.get("/api/v1/models", headers=keys.h("submitter")).json()
    assert model["name"] == "order-audit" and model["version_count"] == 3
    path = "/api/v1/models/order-audit/versions"
    assert client.post(f"{path}/{v1}/promote", json={}, headers=keys.h("approver")).status_code == 403
    assert client.post(f"{path}/{v1}/promote", json={}, headers=keys.h("admin")).json()["changed"] is True
    refused = client.post(f"{path}/{v2}/promote", json={}, headers=keys.h("admin"))
    assert refused.status_code == 409 and "0.7" in refused.json()["detail"]
    assert (
        client.post(f"{path}/{v3}/promote", json={"reason": "better"}, headers=keys.h("admin")).status_code
        == 200
    )
    detail = client.get("/api/v1/models/order-audit", headers=keys.h("submitter")).json()
    assert detail["aliases"] == {"production": v3}
    assert [h["to_version"] for h in detail["history"]] == [v1, v3]
    assert all("path" not in v for v in detail["versions"])
    assert client.get("/api/v1/models/nope", headers=keys.h("submitter")).status_code == 404
    assert client.get(f"{path}/99", headers=keys.h("submitter")).status_code == 404

    bundle = client.get(f"{path}/{v3}/download", headers=keys.h("submitter"))
    assert bundle.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(bundle.content), mode="r:gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    [folder] = [p for p in (tmp_path / "unpacked").iterdir() if p.is_dir()]
    loaded = GPT2ForSequenceClassification.from_pretrained(folder).eval()
    ids = torch.tensor([[4, 7, 8]])
    assert torch.allclose(loaded(ids).logits, tiny_model(2)(ids).logits, atol=1e-6)
