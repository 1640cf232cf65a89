"""The dashboard's automation gate panel: the policy deciding now, automation rate and cost per order,
read from ``GET /api/v1/stats`` of a real server (thresholds first, then a promoted tiny policy)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from gpt2_agent.api.keys import create_key
from gpt2_agent.config import Settings
from gpt2_agent.rl.feedback_log import FeedbackLog
from gpt2_agent.web import i18n
from tests.api.test_gate_api import PROBES, Server, train_and_promote
from tests.web.test_pages import signed_in


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    """``create_app`` with its executor running; no reload delay or exploration in the gate."""
    quiet = settings.model_copy(
        update={"gate_policy_reload_seconds": 0.0, "gate_explore_min": 0.0, "gate_explore_max": 0.0}
    )
    server = Server(quiet)
    with server.client:
        yield server


def panel(html: str) -> str:
    match = re.search(r'<section id="gate".*?</section>', html, re.S)
    assert match, "the dashboard has no gate panel"
    return match.group(0)


def sig_of(html: str) -> str:
    match = re.search(r'id="gate-sig" name="sig" value="([^"]*)"', html)
    assert match
    return match.group(1)


def test_the_panel_shows_thresholds_then_the_promoted_policy(server: Server) -> None:
    approver = signed_in(server.app, create_key(server.db, name="abe", role="approver")[1])
    en = i18n.catalog("en")
    first = panel(approver.get("/").text)
    assert 'data-policy="threshold"' in first and en["dashboard.gate_thresholds"] in first
    assert approver.get("/dashboard/gate", params={"sig": sig_of(first)}).status_code == 204

    _, version = train_and_promote(server.settings, server.db)
    outputs = [server.decide(p, amount) for p, amount in PROBES]
    approved = next(o for o in outputs if o["action"] == "auto_approve")
    FeedbackLog(server.db).record_outcome("chargeback", "chargeback", decision_id=approved["decision_id"])
    stats: dict[str, Any] = server.gate_stats()

    polled = approver.get("/dashboard/gate", params={"sig": sig_of(first)})
    assert polled.status_code == 200
    html = panel(polled.text)
    assert f'data-policy="{version}"' in html and f">{version}</a>" in html
    assert i18n.format_percent(stats["automation_rate"], "en") in html
    assert i18n.format_number(stats["cost_per_order"], "en", decimals=2) in html
    review = i18n.format_number(stats["cost_model"]["review_cost"], "en", decimals=2)
    assert f"a review {review};" in html

    zh = signed_in(server.app, create_key(server.db, name="bea", role="approver")[1], lang="zh")
    assert i18n.catalog("zh")["dashboard.gate"] in panel(zh.get("/").text)


def test_submitters_do_not_see_the_panel(server: Server) -> None:
    clerk = signed_in(server.app, create_key(server.db, name="sue", role="submitter")[1])
    assert 'id="gate"' not in clerk.get("/").text
    assert clerk.get("/dashboard/gate").status_code == 204
