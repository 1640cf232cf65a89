"""Upload and download through the API."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Keys


def test_upload_and_download(client: TestClient, keys: Keys) -> None:
    data = "收据 receipt".encode() * 100
    r = client.post(
        "/api/v1/files", files={"file": ("收据.txt", data, "text/plain")}, headers=keys.h("submitter")
    )
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["original_name"] == "收据.txt"
    got = client.get(f"/api/v1/files/{meta['id']}/content", headers=keys.h("submitter"))
    assert got.content == data and got.headers["content-disposition"].startswith("attachment")
    assert client.get(f"/api/v1/files/{meta['id']}", headers=keys.h("submitter2")).status_code == 404


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\..\\win.ini", "/etc/passwd", "....//x", "..／x"])
def test_traversal_names_stay_inside_storage(client: TestClient, keys: Keys, name: str) -> None:
    r = client.post(
        "/api/v1/files", files={"file": (name, b"hello", "text/plain")}, headers=keys.h("submitter")
    )
    assert r.status_code in (201, 422)
    if r.status_code == 201:
        assert "/" not in r.json()["original_name"] and "\\" not in r.json()["original_name"]
    storage = client.app.state.settings.storage_path  # type: ignore[attr-defined]
    for path in storage.rglob("*"):
        assert storage.resolve() in path.resolve().parents


def test_upload_over_limit_is_413(client: TestClient, keys: Keys) -> None:
    r = client.post("/api/v1/files", files={"file": ("big.bin", b"x" * 400_000)}, headers=keys.h("submitter"))
    assert r.status_code == 413
