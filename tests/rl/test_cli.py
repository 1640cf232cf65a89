"""``gpt2-agent rl train | evaluate | promote`` on a feedback log, through the registry's gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gpt2_agent.cli.rl import app
from gpt2_agent.config import Settings
from gpt2_agent.registry import Registry
from gpt2_agent.rl.feedback_log import FeedbackLog
from gpt2_agent.store import Database
from tests.rl.conftest import LogRows


def _fill_log(db: Database, rows: LogRows, n: int = 120) -> None:
    """Decisions of an exploring threshold gate with their outcomes (good unless p is low)."""
    rng = np.random.default_rng(0)
    log = FeedbackLog(db)
    for _ in range(n):
        p = float(rng.random())
        amount = f"{rng.uniform(20, 450):.2f}"
        greedy = "auto_approve" if p > 0.9 else "auto_reject" if p < 0.1 else "escalate"
        action = greedy if rng.random() > 0.2 else "escalate"
        propensity = (
            0.8 if action == greedy and greedy != "escalate" else 1.0 if greedy == "escalate" else 0.2
        )
        bad = bool(rng.random() > p)
        run = rows.run()
        d = rows.decision(probability=p, amount=amount, action=action, propensity=propensity, run_id=run)
        if action == "escalate":
            rows.review(run, "reject" if bad else "approve")
        log.record_outcome("chargeback", "chargeback" if bad else "clear", decision_id=d)


def test_train_evaluate_promote_from_the_log(
    settings: Settings, database: Database, log_rows: LogRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPT2_AGENT_HOME", str(settings.home))
    monkeypatch.setenv("GPT2_AGENT_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    empty = runner.invoke(app, ["train", "--source", "log"])
    assert empty.exit_code == 2 and "no decisions with known outcomes" in empty.output
    assert runner.invoke(app, ["train", "--source", "log", "--learner", "dqn"]).exit_code == 2

    _fill_log(database, log_rows)
    first = runner.invoke(app, ["train", "--source", "log", "--json"])
    assert first.exit_code == 0, first.output
    out = json.loads(first.output)
    assert out["registered"] == "gate-policy:1"
    assert out["metrics"]["log_decisions"] == 120 and out["metrics"]["cost_per_order"] > 0

    evaluated = runner.invoke(app, ["evaluate", "1", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    policies = json.loads(evaluated.output)["policies"]
    assert set(policies) == {"gate-policy:1", "thresholds (settings)", "always escalate"}
    assert policies["always escalate"]["dr"]["value"] == pytest.approx(8.0, rel=0.1)

    assert runner.invoke(app, ["promote", "1"]).exit_code == 0
    second = runner.invoke(app, ["train", "--source", "log", "--learner", "sarsa", "--json"])
    assert second.exit_code == 0, second.output
    promoted = runner.invoke(app, ["promote", "2"])
    # Same log, same learner family: not strictly cheaper, so the gate refuses (or it is cheaper).
    registry = Registry(settings, database)
    production = registry.alias_version("gate-policy", "production")
    if promoted.exit_code == 0:
        assert production == 2
    else:
        assert production == 1 and "does not beat" in promoted.output
    forced = runner.invoke(app, ["promote", "2", "--force", "--json"])
    assert forced.exit_code == 0 and registry.alias_version("gate-policy", "production") == 2
    history = registry.alias_history("gate-policy", "production")
    assert [h.to_version for h in history][-1] == 2 and history[0].to_version == 1
