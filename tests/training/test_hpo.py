"""Optuna search at toy size: trials run, the study is stored, the best model becomes a candidate."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

import optuna
import pytest
from sqlalchemy import create_engine, text

from gpt2_agent.config import Settings
from gpt2_agent.demo import generate_warehouse
from gpt2_agent.registry import Registry
from gpt2_agent.store import Database
from gpt2_agent.training import run_hpo
from gpt2_agent.training.hpo import hpo_storage

CONFIG = {
    "name": "audit-hpo",
    "data": {"dataset": "order_audit", "limit": 400},
    "tokenizer": {"vocab_size": 300},
    "model": {"task": "sequence_classification", "n_layer": 1, "n_embd": 32, "n_head": 2, "context": 64},
    "train": {"max_steps": 8, "eval_every": 2, "warmup_steps": 1, "precision": "fp32", "threads": 1},
    "eval": {"batch_size": 64},
    "register": {"enabled": True, "name": "order-audit"},
}
SPACE = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "train.batch_size": {"choices": [16, 32]}}


@pytest.fixture
def drop_optuna_schema(settings: Settings) -> Iterator[None]:
    """The PostgreSQL schema Optuna gets beside the test's own schema goes away with it."""
    yield
    match = re.search(r"search_path%3D(\w+)|search_path=(\w+)", settings.database_url)
    if settings.database_url.startswith("postgresql") and match:
        schema = (match.group(1) or match.group(2)) + "_optuna"
        engine = create_engine(unquote(settings.database_url.split("?")[0]), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.usefixtures("drop_optuna_schema")
def test_three_trials_and_best_registered(settings: Settings, database: Database) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    generate_warehouse(settings.warehouse_url, orders=500, seed=2)
    result = run_hpo(CONFIG, settings, trials=3, search_space=SPACE, db=database, seed=1)
    assert len(result.trials) == 3
    states = {t["state"] for t in result.trials}
    assert states <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states
    assert result.best_trial is not None and result.best_value is not None
    assert set(result.best_params) == {"train.lr", "train.batch_size"}

    # The study is in the database server, readable by any other worker.
    study = optuna.load_study(study_name="audit-hpo-hpo", storage=hpo_storage(settings))
    assert len(study.trials) == 3 and study.best_trial.number == result.best_trial
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.intermediate_values for t in completed)  # validation loss reported per eval

    version = Registry(settings, database).resolve("order-audit:candidate")
    assert version.version == result.registered_version
    assert version.lineage["hpo"]["trial"] == result.best_trial

    # Running again continues the same study.
    again = run_hpo(CONFIG, settings, trials=1, search_space=SPACE, db=database, seed=1, register=False)
    assert len(again.trials) == 4 and again.registered_version is None


def test_sqlite_memory_database_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        hpo_storage(Settings(database_url="sqlite:///:memory:"))
