"""NLU routes: bad input, model not trained (503 naming the command), and a parse with a model."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import Keys


def test_nlu_routes_without_a_model(client: TestClient, keys: Keys) -> None:
    h = keys.h("submitter")
    assert client.post("/api/v1/nlu/parse", json={"text": "   "}, headers=h).status_code == 422
    assert client.post("/api/v1/nlu/parse", json={"text": "x" * 5000}, headers=h).status_code == 413
    assert client.post("/api/v1/nlu/parse", json={}, headers=h).status_code == 422
    r = client.post("/api/v1/nlu/parse", json={"text": "帮我审核一下订单 66120"}, headers=h)
    assert r.status_code in (200, 503)
    if r.status_code == 503:
        assert "train" in r.json()["detail"]
    bad_id = client.post("/api/v1/chat", json={"text": "hi", "conversation_id": "../x"}, headers=h)
    assert bad_id.status_code == 422
    assert client.post("/api/v1/chat", json={"text": ""}, headers=h).status_code == 422
    assert client.post("/api/v1/chat", json={"text": "hi"}).status_code == 401
