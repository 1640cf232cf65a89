"""The cost model: refuses bad costs naming the field; costs each action; shown by the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from gpt2_agent.config import load_settings
from gpt2_agent.rl.costs import CostModel, CostModelError


@pytest.mark.parametrize(
    "field",
    [
        "review_cost",
        "wrong_approval_fixed",
        "wrong_approval_rate",
        "wrong_rejection_fixed",
        "wrong_rejection_rate",
    ],
)
@pytest.mark.parametrize("value", [-1.0, math.inf, math.nan])
def test_bad_costs_are_refused_with_the_field_named(field: str, value: float) -> None:
    with pytest.raises(CostModelError, match=field):
        CostModel(**{field: value})


def test_settings_refuse_bad_costs_with_the_field_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="gate_review_cost"):
        load_settings(home=tmp_path, gate_review_cost=-3)
    with pytest.raises(ValidationError, match="gate_wrong_approval_rate"):
        load_settings(home=tmp_path, gate_wrong_approval_rate=float("inf"))
    with pytest.raises(CostModelError, match="unknown fields"):
        CostModel.from_dict({"review": 3})


def test_action_costs() -> None:
    model = CostModel(
        review_cost=8,
        wrong_approval_fixed=15,
        wrong_approval_rate=1,
        wrong_rejection_fixed=5,
        wrong_rejection_rate=0.2,
    )
    amount = np.array([100.0, 100.0, 200.0])
    bad = np.array([True, False, False])
    reviewer = np.array([True, False, True])  # wrong, wrong, right
    out = model.action_costs(amount, bad, reviewer)
    np.testing.assert_allclose(out[:, 0], [115.0, 0.0, 0.0])  # approve
    np.testing.assert_allclose(out[:, 1], [0.0, 25.0, 45.0])  # reject
    np.testing.assert_allclose(out[:, 2], [8.0 + 115.0, 8.0 + 25.0, 8.0])  # review + the reviewer's mistake
    np.testing.assert_allclose(model.action_costs(amount, bad)[:, 2], [8.0, 8.0, 8.0])  # reviewers right
    exp = model.expected_costs(np.array([100.0]), np.array([0.9]))
    np.testing.assert_allclose(exp, [[0.1 * 115.0, 0.9 * 25.0, 8.0]])


def test_cli_shows_the_costs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gpt2_agent.cli.rl import app

    monkeypatch.setenv("GPT2_AGENT_HOME", str(tmp_path))
    monkeypatch.setenv("GPT2_AGENT_GATE_REVIEW_COST", "12.5")
    result = CliRunner().invoke(app, ["costs", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["costs"]["review_cost"] == 12.5
    assert data["examples"][1] == {
        "amount": 300.0,
        "wrong_approval": 315.0,
        "wrong_rejection": 65.0,
        "review": 12.5,
    }
    assert data["hard_rules"]["max_amount"] == "500.00"
    human = CliRunner().invoke(app, ["costs"])
    assert "wrong approval" in human.output and "500.00" in human.output
    monkeypatch.setenv("GPT2_AGENT_GATE_WRONG_REJECTION_FIXED", "-1")
    refused = CliRunner().invoke(app, ["costs"])
    assert refused.exit_code == 2 and "gate_wrong_rejection_fixed" in refused.output
