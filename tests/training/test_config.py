"""Training configs: shipped files load, errors name key and line, --set overrides coerce types."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt2_agent.training.config import ConfigError, key_lines, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.toml"))

GOOD = """\
name = "demo"

[data]
dataset = "order_audit"

[model]
task = "sequence_classification"
n_layer = 2
n_embd = 64
n_head = 2
context = 64

[train]
lr = 1e-3
max_steps = 10
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path: Path) -> None:
    from gpt2_agent.nlu.train import is_nlu_config, split_config

    # NLU configs add an [nlu] section that the NLU trainer takes off before the pipeline sees it.
    cfg = load_config(split_config(path)[0]) if is_nlu_config(path) else load_config(path)
    assert cfg.name and (cfg.train.max_steps or cfg.train.epochs)
    if ".tiny." not in path.name and not is_nlu_config(path):  # the NLU model is sized for latency
        assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head) == (6, 384, 6)


def test_shipped_order_audit_is_the_real_size() -> None:
    cfg = load_config(Path(__file__).parents[2] / "configs" / "order-audit.toml")
    assert cfg.model.n_positions == 256 and cfg.model.dropout == 0.0
    assert cfg.model.activation == "gelu_pytorch_tanh"
    assert cfg.publish.enabled and cfg.publish.alias == "candidate"


def test_bad_value_names_key_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("lr = 1e-3", "lr = -1"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:14: train.lr: Input should be greater than 0 (got -1)" in str(err.value)


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("n_head = 2", "n_head = 2\nn_heads = 4"))
    with pytest.raises(ConfigError, match=r"x\.toml:11: model\.n_heads: unknown key"):
        load_config(path)


def test_missing_key_points_at_its_section(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("max_steps = 10\n", ""))
    with pytest.raises(ConfigError, match=r"x\.toml:13: train: .*set max_steps or epochs"):
        load_config(path)
    path = _write(tmp_path, GOOD.replace('dataset = "order_audit"\n', ""))
    with pytest.raises(ConfigError, match=r"x\.toml:3: data\.dataset: Field required"):
        load_config(path)


def test_missing_section(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.split("[train]")[0])
    with pytest.raises(ConfigError, match=r"train: Field required"):
        load_config(path)


def test_wrong_type_and_bad_choice(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("n_layer = 2", 'n_layer = "two"').replace("order_audit", "orders"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "x.toml:4: data.dataset" in message and "'orders'" in message
    assert "x.toml:8: model.n_layer" in message


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("lr = 1e-3", "lr = = 1e-3"))
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 14"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_overrides_are_type_coerced(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    cfg = load_config(
        path,
        [
            "train.lr=3e-4",
            "train.max_steps=7",
            "train.compile=true",
            "model.init_from=runs/lm/model",
            'name="other"',
            "data.source.kind=csv",
            "train.precision=fp32",
        ],
    )
    assert cfg.train.lr == 3e-4 and cfg.train.max_steps == 7 and cfg.train.compile is True
    assert cfg.model.init_from == "runs/lm/model" and cfg.name == "other"
    assert cfg.data.source == {"kind": "csv"} and cfg.train.precision == "fp32"


def test_bad_override_names_the_override(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"--set train\.lr=abc: train\.lr"):
        load_config(path, ["train.lr=abc"])
    with pytest.raises(ConfigError, match=r"--set train\.lrr=1: train\.lrr: unknown key"):
        load_config(path, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["train.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config(path, ["name.x=1"])


def test_key_lines() -> None:
    lines = key_lines('a = 1\n[t]\nb.c = 2\n"q" = 3\n[[arr]]\nd = """x\ny"""\n')
    assert lines[("a",)] == 1 and lines[("t",)] == 2 and lines[("t", "b", "c")] == 3
    assert lines[("t", "q")] == 4 and lines[("arr", "d")] == 6


def test_mapping_and_model_round_trip(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD))
    again = load_config(cfg, ["train.max_steps=3"])
    assert again.train.max_steps == 3 and again.model.n_positions == 64
    as_dict = load_config(cfg.model_dump(mode="json", by_alias=True))
    assert as_dict == cfg
