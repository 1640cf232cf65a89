"""``gpt2-agent demo init``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gpt2_agent.cli.demo import app as demo_app

# Mounted the way the main CLI mounts it: ``gpt2-agent demo init``.
app = typer.Typer()
app.add_typer(demo_app, name="demo")
runner = CliRunner()


def test_init_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    result = runner.invoke(app, ["demo", "init", "--orders", "60", "--seed", "2", "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["orders"] == 60
    assert summary["seed"] == 2
    assert summary["showcase_orders"] == ["66120", "12345", "77410"]
    assert summary["approved"] + summary["rejected"] + summary["pending"] == 60


def test_init_table_uses_the_settings_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPT2_AGENT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GPT2_AGENT_WAREHOUSE_URL", raising=False)
    result = runner.invoke(app, ["demo", "init", "--orders", "40"])
    assert result.exit_code == 0, result.output
    assert "Demo warehouse" in result.stdout
    assert "66120" in result.stdout
    assert (tmp_path / "home" / "warehouse.db").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orders", "3"], "orders must be at least 10"),
        (["--label-noise", "0.7"], "label_noise"),
        (["--url", "nosuchdb://x"], "database error"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, args: list[str], message: str) -> None:
    url = ["--url", f"sqlite:///{tmp_path / 'w.db'}"] if "--url" not in args else []
    result = runner.invoke(app, ["demo", "init", *url, *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
