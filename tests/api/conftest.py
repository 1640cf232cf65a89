from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from gpt2_agent.api import create_app
from gpt2_agent.api.keys import create_key
from gpt2_agent.config import Settings


@dataclass
class Keys:
    admin: str
    approver: str
    approver2: str
    submitter: str
    submitter2: str

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, who)}"}


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"plugins": ["tests.plugins.sample"], "max_upload_bytes": 200_000})


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    app = create_app(api_settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def keys(client: TestClient) -> Keys:
    db = client.app.state.db  # type: ignore[attr-defined]
    made = {
        "admin": create_key(db, name="root", role="admin")[1],
        "approver": create_key(db, name="bob", role="approver")[1],
        "approver2": create_key(db, name="carol", role="approver")[1],
        "submitter": create_key(db, name="alice", role="submitter")[1],
        "submitter2": create_key(db, name="mallory", role="submitter")[1],
    }
    return Keys(**made)
