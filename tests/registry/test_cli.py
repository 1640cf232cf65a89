"""``gpt2-agent models`` against a real local registry (SQLite in a temporary home)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpt2_agent.cli.models import app

MakeOutput = Callable[..., Path]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setenv("GPT2_AGENT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GPT2_AGENT_DATABASE_URL", raising=False)
    monkeypatch.delenv("GPT2_AGENT_MODELS_DIR", raising=False)
    monkeypatch.delenv("GPT2_AGENT_CONFIG_FILE", raising=False)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return run


def _output(make_output: MakeOutput, auc: float) -> Path:
    folder = make_output()
    (folder / "metrics.json").write_text(json.dumps({"roc_auc": auc}))
    return folder


def test_models_cli(
    cli: Callable[..., tuple[int, str, str]], make_output: MakeOutput, tmp_path: Path
) -> None:
    code, out, _ = cli("list")
    assert code == 0 and "No models registered yet" in out

    for auc in (0.8, 0.7):
        code, out, err = cli(
            "register", str(_output(make_output, auc)), "--name", "audit", "--eval-set-hash", "e", "--json"
        )
        assert code == 0, err
    assert json.loads(out)["version"] == 2

    code, out, _ = cli("list", "--json")
    [model] = json.loads(out)
    assert (model["name"], model["latest_version"], model["task"]) == ("audit", 2, "classify")
    code, out, _ = cli("list")
    assert code == 0 and "audit" in out and "roc_auc" in out

    code, out, _ = cli("promote", "audit", "1", "--by", "alice")
    assert code == 0 and "production" in out

    code, out, err = cli("promote", "audit", "2", "--by", "alice")
    assert code == 1
    assert "does not beat" in err and "roc_auc=0.7" in err and "roc_auc=0.8" in err
    assert "Traceback" not in err + out and len(err.strip().splitlines()) == 1

    code, out, err = cli("promote", "audit", "2", "--force", "--by", "ops", "--reason", "drill", "--json")
    assert code == 0, err
    assert json.loads(out)["forced"] is True

    code, out, _ = cli("show", "audit:production", "--json")
    shown = json.loads(out)
    assert (shown["version"], shown["aliases"], shown["eval_set_hash"]) == (2, ["production"], "e")
    code, out, _ = cli("show", "audit", "--json")
    assert [v["version"] for v in json.loads(out)["versions"]] == [1, 2]
    code, out, _ = cli("show", "audit")
    assert code == 0 and "generation" in out
    code, out, _ = cli("show", "audit:1")
    assert code == 0 and "roc_auc=0.8" in out

    code, out, _ = cli("history", "audit", "--json")
    assert [(e["from_version"], e["to_version"], e["who"]) for e in json.loads(out)] == [
        (None, 1, "alice"),
        (1, 2, "ops"),
    ]

    target = tmp_path / "downloads"
    target.mkdir()
    code, out, err = cli("download", "audit", "-o", str(target), "--json")
    assert code == 0, err
    bundle = Path(json.loads(out)["path"])
    assert bundle == target / "audit-v2.tar.gz"
    with tarfile.open(bundle) as tar:
        assert "audit-v2/model.safetensors" in tar.getnames()


def test_models_cli_errors_are_one_line(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    for args, message in [
        (("show", "nope:1"), "model 'nope' not found"),
        (("show", "Bad Name"), "invalid model name"),
        (("download", "nope"), "model 'nope' not found"),
        (("promote", "nope", "1"), "model 'nope' not found"),
        (("register", str(tmp_path / "missing"), "--name", "audit"), "not a folder"),
    ]:
        code, out, err = cli(*args)
        assert code == 1, (args, out, err)
        assert message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
