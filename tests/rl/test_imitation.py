"""With a real (tiny) audit model: the demo order stream, and imitation retraining from reviewers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gpt2_agent.cli import rl as rl_cli
from gpt2_agent.config import Settings, load_settings
from gpt2_agent.demo import generate_warehouse
from gpt2_agent.registry import Registry
from gpt2_agent.store import Database, create_database, upgrade
from gpt2_agent.training.data.audit_dataset import load_audit_dataset
from tests.rl.conftest import LogRows

ROOT = Path(__file__).resolve().parents[2]
SEED = 3
TRAIN = [
    "data.limit=400",
    "train.max_steps=20",
    "train.eval_every=1000",
    "train.checkpoint_every=1000",
    "eval.plots=false",
    "tokenizer.vocab_size=400",
    "register.promote=true",
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Database]]:
    """A demo warehouse (seed 3) and a tiny ``order-audit`` in production, on SQLite."""
    from gpt2_agent.training import train_from_config

    root = tmp_path_factory.mktemp("rl-home")
    warehouse = f"sqlite:///{root / 'warehouse.db'}"
    generate_warehouse(warehouse, orders=700, seed=SEED)
    settings = load_settings(home=root, warehouse_url=warehouse, database_url=f"sqlite:///{root / 'app.db'}")
    db = create_database(settings.database_url)
    upgrade(db)
    train_from_config(
        ROOT / "configs" / "order-audit.tiny.toml", settings, overrides=TRAIN, progress=False, db=db
    )
    yield settings, db
    db.dispose()


def test_the_demo_stream_carries_the_demo_truth(home: tuple[Settings, Database]) -> None:
    settings, db = home
    stream = rl_cli.demo_stream(settings, db, orders=150, demo_seed=SEED)
    assert len(stream) == 150 and "demo truth" in stream.source
    assert 0.0 < stream.bad.mean() < 0.5 and ((stream.probability > 0) & (stream.probability < 1)).all()
    assert (stream.reviewer_approves == ~stream.bad).all()  # a review settles the order
    other = rl_cli.demo_stream(settings, db, orders=150, demo_seed=SEED + 1)  # not how it was made
    assert "labels: reviewers" in other.source
    policy, notes = rl_cli.train_policy("q_learning", stream, settings)
    assert notes["orders"] == 150 and policy.probabilities(stream.obs[:3]).shape == (3, 3)


def test_imitation_moves_the_model_towards_the_reviewers(home: tuple[Settings, Database]) -> None:
    settings, db = home
    rows = LogRows(db)
    records = load_audit_dataset(settings.warehouse_url, limit=60)
    for r in records[:40]:  # these reviewers reject everything the model sees here
        rows.review(rows.run(), "reject", text=r.text)
    result = rl_cli.imitation_retrain(
        settings, db, steps=25, lr=2e-3, replay=40, min_examples=20, promote=True
    )
    assert result["examples"] == 40 and result["replayed"] == 40
    assert result["after"]["reviewer_p_true"] > result["before"]["reviewer_p_true"] + 0.05
    assert result["after"]["reviewer_agreement"] >= result["before"]["reviewer_agreement"]
    registry = Registry(settings, db)
    version = registry.get_version("order-audit", result["version"])
    assert "candidate" in version.aliases and version.lineage["init_from"] == "order-audit:1"
    assert "promotion" in result  # the registry's gate answered (on the production's own eval set)
    assert version.eval_set_hash == registry.get_version("order-audit", 1).eval_set_hash


def test_retrain_command_needs_a_source(
    home: tuple[Settings, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = home
    app = typer.Typer()
    app.command()(rl_cli.retrain)
    app.command("noop")(lambda: None)  # two commands: Typer keeps the command name
    monkeypatch.setenv("GPT2_AGENT_HOME", str(settings.home))
    monkeypatch.setenv("GPT2_AGENT_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(app, ["retrain", "order-audit"])
    assert result.exit_code == 2 and "--from-feedback" in result.output
    few = CliRunner().invoke(app, ["retrain", "order-audit", "--from-feedback", "--min-examples", "1000"])
    assert few.exit_code == 2 and "need at least 1000" in few.output
