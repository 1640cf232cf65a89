"""Training configs: TOML files parsed into pydantic models, with errors that point at the line.

A config has the sections ``[data]``, ``[tokenizer]``, ``[model]``, ``[train]``, ``[eval]`` and
``[register]`` (see ``configs/*.toml``). A bad or missing key is reported as
``configs/x.toml:12: train.lr: Input should be greater than 0 (got -1)``; a key that is missing
points at its section's header. ``--set train.lr=1e-3`` style overrides (dotted keys, values
parsed as TOML so ``3``, ``1e-3``, ``true`` and ``"text"`` get their types) are applied before
validation and named as such in errors.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpt2_agent.modeling.config import ModelSpec
from gpt2_agent.training.trainer import TrainerConfig


class ConfigError(ValueError):
    """A training config cannot be read or is invalid; the message names key and line."""


class DataConfig(BaseModel):
    """Where the examples come from and how they are split.

    ``dataset`` is ``order_audit`` (the warehouse's decided orders), ``warehouse_corpus`` (all
    free text of the warehouse, for LM pretraining), ``records`` (any ``source``: a table such as
    ``{kind = "csv", path = "x.csv"}``, read through ``gpt2_agent.training.data.open_source``),
    or ``nlu`` (JSONL/CSV records with ``text``, ``intent`` and ``entities`` spans).
    """

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["order_audit", "warehouse_corpus", "records", "nlu"]
    warehouse_url: str | None = None  # default: settings.warehouse_url
    source: dict[str, Any] | None = None
    text_field: str = "text"
    label_field: str = "label"
    template: str | None = None  # order_audit: record-to-text template
    limit: int | None = Field(default=None, ge=1)
    train_fraction: float = Field(default=0.8, gt=0, le=1)
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    test_fraction: float = Field(default=0.1, ge=0, lt=1)
    split_salt: str = ""
    normalize: Literal["NFC", "NFKC"] | None = None
    lowercase: bool = False
    dedup: bool = False


class TokenizerConfig(BaseModel):
    """Train a byte-level BPE tokenizer, or reuse one (``path``; an ``init_from`` model's wins)."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    vocab_size: int = Field(default=8192, ge=300, le=1 << 20)
    min_frequency: int = Field(default=2, ge=1)
    corpus: Literal["train", "warehouse"] = "train"
    max_length: int | None = Field(default=None, ge=8)  # default: the model's context


class EvalConfig(BaseModel):
    """Final evaluation on the test split (validation split if there is no test split)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=64, ge=1)
    split: Literal["test", "validation"] = "test"
    plots: bool = True
    calibration_bins: int = Field(default=10, ge=2, le=100)
    # Held-out texts a classifier carries (eval_sample.json) so serving can check bf16/int8
    # against fp32 on them; 0 keeps the training data out of the artifact (served in fp32 then).
    check_sample: int = Field(default=256, ge=0, le=100_000)


class RegisterConfig(BaseModel):
    """Put the trained model into the registry (as ``alias``, normally ``candidate``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    name: str | None = None  # default: the config's name
    alias: str | None = "candidate"
    promote: bool = False  # try the promotion gate to ``production`` afterwards
    description: str | None = None
    created_by: str = "training"


class TrainingConfig(BaseModel):
    """A whole training config (one TOML file)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    output_dir: str | None = None  # default: <home>/runs/<name>
    data: DataConfig
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainerConfig
    eval: EvalConfig = Field(default_factory=EvalConfig)
    # ``register`` would shadow BaseModel.register; the TOML section keeps that name.
    publish: RegisterConfig = Field(default_factory=RegisterConfig, alias="register")


# --- reading ---------------------------------------------------------------------------------
_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def _split_key(raw: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in raw.split("."))


def key_lines(source: str) -> dict[tuple[str, ...], int]:
    """Line number (1-based) of every table header and key in TOML ``source``.

    Headers map ``("train",)``; keys map ``("train", "lr")``. Good enough for error messages;
    values spanning lines (arrays, multi-line strings) are not descended into.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline = False
    for number, line in enumerate(source.splitlines(), start=1):
        if in_multiline:
            if line.count('"""') % 2 or line.count("'''") % 2:
                in_multiline = False
            continue
        header = _TABLE.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(table + _split_key(key.group(1)), number)
            if line.count('"""') % 2 or line.count("'''") % 2:
                in_multiline = True
    return lines


def parse_overrides(overrides: Iterable[str]) -> list[tuple[tuple[str, ...], Any, str]]:
    """``["train.lr=1e-3", ...]`` → ``[(("train", "lr"), 0.001, "train.lr=1e-3"), ...]``."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value (for example train.lr=3e-4)")
        key, raw = item.split("=", 1)
        path = tuple(p.strip() for p in key.strip().split("."))
        if not all(path):
            raise ConfigError(f"--set {item!r}: empty key")
        out.append((path, _parse_value(raw.strip()), item))
    return out


def _parse_value(raw: str) -> Any:
    """A TOML value (``3``, ``1e-3``, ``true``, ``"x"``, ``[1, 2]``), else the raw string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_override(data: dict[str, Any], path: tuple[str, ...], value: Any, item: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item}: {part!r} is not a section")
        node = child
    node[path[-1]] = value


def load_config(
    config: str | Path | Mapping[str, Any] | TrainingConfig,
    overrides: Iterable[str] = (),
) -> TrainingConfig:
    """Read a TOML training config (a path, a parsed mapping, or a config to copy) with overrides.

    Raises :class:`ConfigError` naming the file, line and key of every problem.
    """
    source_text = ""
    origin = "<config>"
    if isinstance(config, TrainingConfig):
        data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    elif isinstance(config, Mapping):
        data = _deep_copy(config)
    else:
        path = Path(config)
        origin = str(path)
        try:
            source_text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        try:
            data = tomllib.loads(source_text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    overridden: dict[tuple[str, ...], str] = {}
    for key_path, value, item in parse_overrides(overrides):
        _apply_override(data, key_path, value, item)
        overridden[key_path] = item
    try:
        return TrainingConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, key_lines(source_text), overridden)) from exc


def _describe(
    exc: ValidationError,
    origin: str,
    lines: dict[tuple[str, ...], int],
    overridden: dict[tuple[str, ...], str],
) -> str:
    problems = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"])
        key = ".".join(loc) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] not in ("missing",) and "input" in error:
            message = f"{message} (got {error['input']!r})"
        where = _where(loc, origin, lines, overridden, missing=error["type"] == "missing")
        problems.append(f"{where}: {key}: {message}")
    return "invalid training config:\n  " + "\n  ".join(problems)


def _where(
    loc: tuple[str, ...],
    origin: str,
    lines: dict[tuple[str, ...], int],
    overridden: dict[tuple[str, ...], str],
    *,
    missing: bool,
) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in overridden:
            return f"--set {overridden[loc[:n]]}"
    for n in range(len(loc) - 1 if missing else len(loc), 0, -1):
        if loc[:n] in lines:
            return f"{origin}:{lines[loc[:n]]}"
    if missing and len(loc) > 1:
        return f"{origin} (no [{'.'.join(loc[:-1])}] section)" if loc[:-1] not in lines else origin
    return origin


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


__all__ = [
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "RegisterConfig",
    "TokenizerConfig",
    "TrainingConfig",
    "key_lines",
    "load_config",
    "parse_overrides",
]
