"""A tiny NLU model trained once per test session (configs/nlu.tiny.toml, well under a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt2_agent.config import load_settings
from gpt2_agent.nlu.train import NluTrainResult, train_nlu

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = ROOT / "configs" / "nlu.tiny.toml"


@pytest.fixture(scope="session")
def tiny_nlu(tmp_path_factory: pytest.TempPathFactory) -> NluTrainResult:
    """The tiny model, trained in this session (not registered: tests register copies)."""
    home = tmp_path_factory.mktemp("nlu-tiny")
    settings = load_settings(home=home)
    return train_nlu(TINY_CONFIG, settings, ["register.enabled=false"], progress=False, resume=False)
