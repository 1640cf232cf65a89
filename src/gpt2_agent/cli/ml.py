"""``gpt2-agent train | evaluate | hpo``: the model-building commands."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpt2_agent.cli.common import JsonOpt, console, fail, print_json
from gpt2_agent.config import load_settings

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set train.lr=1e-3 (repeatable)"),
]


def _known_errors() -> tuple[type[BaseException], ...]:
    from gpt2_agent.cli.distributed import HpoWorkerError
    from gpt2_agent.nlu.errors import NluError
    from gpt2_agent.registry.errors import RegistryError
    from gpt2_agent.training.config import ConfigError
    from gpt2_agent.training.data.errors import DataError
    from gpt2_agent.training.trainer import TrainingError

    return (ConfigError, DataError, TrainingError, RegistryError, FileNotFoundError, HpoWorkerError, NluError)


def _metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = Table("metric", "value", title=title)
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, (int, str)):
            table.add_row(key, str(value))
    return table


def train(
    config: Annotated[Path, typer.Argument(help="A training config (TOML), e.g. configs/order-audit.toml")],
    set_: SetOpt = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Promote the new version to production through the gate")
    ] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints of an earlier run")] = False,
    nproc: Annotated[int, typer.Option("--nproc", help="Processes for distributed training (torchrun)")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train a model from a config: data, tokenizer, model, training, evaluation, registry."""
    if not config.is_file():
        fail(f"config file not found: {config}", 2)
    if nproc > 1:
        from gpt2_agent.cli.distributed import launch

        raise typer.Exit(launch(config, set_ or [], nproc=nproc, fresh=fresh))
    from gpt2_agent.training import train_from_config

    settings = load_settings()
    from gpt2_agent.nlu.train import is_nlu_config, train_nlu

    try:
        if is_nlu_config(config):  # NLU configs carry an [nlu] section: their own data builder
            nlu_result = train_nlu(
                config, settings, list(set_ or []), progress and not as_json, resume=not fresh
            )
            result = nlu_result.pipeline
            result.registered_version = nlu_result.registered_version
        else:
            result = train_from_config(
                config,
                settings,
                overrides=list(set_ or []),
                progress=progress and not as_json,
                resume=not fresh,
            )
        promotion = _promote(settings, result) if promote else None
    except _known_errors() as exc:
        fail(escape(str(exc)), 2)
    numbers: dict[str, Any] = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}
    summary = {
        "name": result.name,
        "task": result.task,
        "model_dir": str(result.model_dir),
        "registered_version": result.registered_version,
        "metrics": numbers,
        "promotion": promotion,
    }
    if as_json:
        print_json(summary)
        return
    console.print(_metrics_table(f"{result.name}: evaluation", numbers))
    if result.registered_version is not None:
        console.print(f"Registered as version {result.registered_version}.")
    if promotion is not None:
        console.print(promotion["reason"] if promotion["changed"] else f"Not promoted: {promotion['reason']}")


def _promote(settings: Any, result: Any) -> dict[str, Any] | None:
    from gpt2_agent.registry import PromotionRefused, Registry
    from gpt2_agent.store import open_database

    if result.registered_version is None:
        return None
    db = open_database(settings)
    try:
        registry = Registry(settings, db)
        name = registry.resolve(f"{_registered_name(result)}:{result.registered_version}").name
        try:
            out: dict[str, Any] = registry.promote(name, result.registered_version, by="cli").to_dict()
        except PromotionRefused as exc:
            return {"changed": False, "reason": str(exc)}
        return out
    finally:
        db.dispose()


def _registered_name(result: Any) -> str:
    lineage = Path(result.model_dir) / "lineage.json"
    if lineage.is_file():
        data = json.loads(lineage.read_text(encoding="utf-8"))
        registered = data.get("config", {}).get("register", {}).get("name")
        if registered:
            return str(registered)
    return str(result.name)


def evaluate(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME:ALIAS (default production)")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="A training config whose [data] to use, or a CSV/JSONL file (text,label)"
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="train | validation | test")] = "test",
    out: Annotated[Path | None, typer.Option("--out", help="Folder for metrics.json and plots")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a registered model: accuracy, P/R/F1, ROC-AUC, confusion matrix, ECE (or perplexity)."""
    from gpt2_agent.modeling import load_model, task_of
    from gpt2_agent.registry import Registry
    from gpt2_agent.store import open_database
    from gpt2_agent.training.config import DataConfig, load_config
    from gpt2_agent.training.datasets import load_examples
    from gpt2_agent.training.evaluate import evaluate_model

    if split not in ("train", "validation", "test"):
        fail("--split must be train, validation or test", 2)
    settings = load_settings()
    db = open_database(settings)
    try:
        version = Registry(settings, db).resolve(model)
        task = task_of(load_model(version.path))
        if data is None:
            lineage = version.lineage.get("config", {}).get("data")
            if not lineage:
                fail(f"{version.ref} records no data config; pass --data", 2)
            data_cfg = DataConfig.model_validate(lineage)
        elif data.endswith(".toml"):
            data_cfg = load_config(data).data
        else:
            kind = Path(data).suffix.lstrip(".").lower()
            if kind not in ("csv", "jsonl", "parquet"):
                fail("--data must be a .toml config or a .csv/.jsonl/.parquet file", 2)
            data_cfg = DataConfig(dataset="records", source={"kind": kind, "path": data})
        splits = load_examples(data_cfg, task, settings)
        examples = {"train": splits.train, "validation": splits.validation, "test": splits.test}[split]
        if not examples:
            fail(f"the {split} split is empty", 2)
        target = out or (settings.home / "evaluations" / f"{version.name}-{version.version}-{split}")
        metrics = evaluate_model(version.path, examples, out_dir=target)
    except _known_errors() as exc:
        fail(escape(str(exc)), 2)
    finally:
        db.dispose()
    if as_json:
        print_json({"model": version.ref, "split": split, "out": str(target), "metrics": metrics})
        return
    console.print(_metrics_table(f"{version.ref} on {split} ({len(examples)} examples)", metrics))
    console.print(f"metrics.json and plots: {target}")


def hpo(
    config: Annotated[Path, typer.Argument(help="A training config (TOML)")],
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials to run")] = 10,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parallel worker processes")] = 1,
    set_: SetOpt = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (continued if it exists)")] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the best model as a candidate")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning); the best model becomes a candidate."""
    if not config.is_file():
        fail(f"config file not found: {config}", 2)
    from gpt2_agent.training import run_hpo

    settings = load_settings()
    try:
        if workers > 1:
            from gpt2_agent.cli.distributed import hpo_workers

            result = hpo_workers(
                config, settings, trials=trials, workers=workers, overrides=set_ or [], study=study
            )
        else:
            result = run_hpo(
                config,
                settings,
                trials=trials,
                overrides=list(set_ or []),
                study_name=study,
                progress=not as_json,
            )
    except _known_errors() as exc:
        fail(escape(str(exc)), 2)
    data = json.loads(json.dumps(dataclasses.asdict(result), default=str))
    if as_json:
        print_json(data)
        return
    table = Table("trial", "state", "value", "params", title=f"study {result.study_name}")
    for trial in data["trials"]:
        table.add_row(
            str(trial.get("number")),
            str(trial.get("state")),
            str(trial.get("value")),
            str(trial.get("params")),
        )
    console.print(table)
    console.print(f"best trial {result.best_trial}: {result.best_value} {result.best_params}")
    if result.registered_version is not None:
        console.print(f"registered as candidate version {result.registered_version}")


def register(app: typer.Typer) -> None:
    """Add the commands to the main CLI."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("hpo")(hpo)
