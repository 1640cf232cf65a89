"""Hyper-parameter search with Optuna: TPE sampling, median pruning on validation loss.

Each trial is a full :func:`~gpt2_agent.training.pipeline.train_from_config` run in its own
folder (``<run folder>/hpo/trial-0007``) and its own ``training_runs`` row; the validation loss
of every evaluation is reported to Optuna, and a trial whose loss is worse than the median of
earlier trials at the same step is pruned. The best trial's model is registered as a
``candidate`` version.

The study lives in the project's database server, so several machines can work on one study
(run ``run_hpo`` on each). Optuna keeps its own Alembic version table named ``alembic_version``,
the same name as ours, so its tables get their own namespace: the schema ``optuna`` (or
``<schema>_optuna`` when the URL pins a schema) on PostgreSQL, and the file
``<database>.optuna.db`` next to a SQLite database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import optuna
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gpt2_agent.config import Settings
from gpt2_agent.store import Database, create_database, upgrade
from gpt2_agent.training.callbacks import Callback
from gpt2_agent.training.config import TrainingConfig, load_config
from gpt2_agent.training.pipeline import REGISTRY_TASKS, TrainResult, train_from_config
from gpt2_agent.training.trainer import TrainingCancelled

logger = logging.getLogger(__name__)

# Searched when no space is given: the settings that matter most for small GPT-2 fine-tuning.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "train.lr": {"low": 1e-4, "high": 5e-3, "log": True},
    "train.weight_decay": {"low": 0.0, "high": 0.2},
    "train.warmup_ratio": {"low": 0.0, "high": 0.1},
    "train.batch_size": {"choices": [16, 32, 64]},
}


class TrialPruned(TrainingCancelled):
    """Raised inside a trial's training when the pruner stops it."""


@dataclass
class HPOResult:
    """The study's outcome."""

    study_name: str
    storage: str
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_model_dir: Path | None = None
    registered_version: int | None = None


class _ReportToOptuna(Callback):
    """Reports validation loss at each evaluation; raises :class:`TrialPruned` when told to."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        super().__init__()
        self.trial = trial
        self.metric = metric

    def _on_eval(self, trainer: Any, metrics: dict[str, Any]) -> None:
        value = metrics.get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), step=int(metrics["step"]))
        if self.trial.should_prune():
            raise TrialPruned(
                f"trial {self.trial.number} pruned at step {metrics['step']} ({self.metric}={value:.4f})"
            )


def hpo_storage(settings: Settings, *, database_url: str | None = None) -> optuna.storages.RDBStorage:
    """Optuna storage on the project's database server, in a namespace of its own (module doc)."""
    url = make_url(database_url or settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise ValueError("HPO needs a file or server database, not an in-memory SQLite")
        path = Path(database)
        target = url.set(database=str(path.with_name(path.stem + ".optuna.db")))
        return optuna.storages.RDBStorage(target.render_as_string(hide_password=False))
    if url.get_backend_name() == "postgresql":
        options = unquote(str(url.query.get("options", "")))
        match = re.search(r"search_path\s*=\s*([A-Za-z0-9_]+)", options)
        schema = f"{match.group(1)}_optuna" if match else "optuna"
        base = url.difference_update_query(["options"])
        if base.drivername == "postgresql":
            base = base.set(drivername="postgresql+psycopg")
        plain = base.render_as_string(hide_password=False)
        admin = create_engine(plain, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        finally:
            admin.dispose()
        return optuna.storages.RDBStorage(
            plain,
            engine_kwargs={"connect_args": {"options": f"-csearch_path={schema}"}, "pool_pre_ping": True},
        )
    raise ValueError(f"no Optuna storage for database backend {url.get_backend_name()!r}")


def _suggest(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Sample every parameter of ``space``; returns ``--set`` style overrides."""
    overrides = []
    for key, spec in space.items():
        if "choices" in spec:
            value: Any = trial.suggest_categorical(key, list(spec["choices"]))
        elif isinstance(spec.get("low"), int) and isinstance(spec.get("high"), int) and not spec.get("log"):
            value = trial.suggest_int(key, spec["low"], spec["high"], step=spec.get("step", 1))
        else:
            value = trial.suggest_float(
                key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log"))
            )
        overrides.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    return overrides


def run_hpo(
    config: str | Path | Mapping[str, Any] | TrainingConfig,
    settings: Settings,
    *,
    trials: int = 10,
    overrides: Sequence[str] = (),
    search_space: Mapping[str, Mapping[str, Any]] | None = None,
    study_name: str | None = None,
    db: Database | None = None,
    seed: int = 0,
    timeout: float | None = None,
    register: bool = True,
    progress: bool = False,
) -> HPOResult:
    """Run ``trials`` more trials of the study for ``config`` and register the best model.

    :param search_space: ``{"train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "train.batch_size": {"choices": [16, 32]}, ...}`` (default :data:`DEFAULT_SPACE`).
    :param study_name: default ``"<config name>-hpo"``; an existing study is continued.
    :param register: register the best trial's model as ``candidate`` (name from ``[register]``).
    :returns: the best trial, every trial's state, value and parameters.
    """
    base = load_config(config, overrides)
    space = dict(search_space or DEFAULT_SPACE)
    name = study_name or f"{base.name}-hpo"
    root = Path(base.output_dir) if base.output_dir else settings.home / "runs" / base.name
    own_db = db is None
    if db is None:
        db = create_database(settings.database_url)
        upgrade(db)
    storage = hpo_storage(settings)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        load_if_exists=True,
    )
    metric = "loss"
    results: dict[int, TrainResult] = {}

    def objective(trial: optuna.Trial) -> float:
        trial_overrides = _suggest(trial, space)
        folder = root / "hpo" / name / f"trial-{trial.number:04d}"
        data = base.model_dump(mode="json", by_alias=True)
        data["name"] = f"{base.name}-trial-{trial.number}"
        data["output_dir"] = str(folder)
        data["register"] = {**data["register"], "enabled": False}
        data["train"]["early_stopping_metric"] = metric
        try:
            result = train_from_config(
                data,
                settings,
                overrides=trial_overrides,
                progress=progress,
                db=db,
                resume=False,
                callbacks=[_ReportToOptuna(trial, metric)],
            )
        except TrialPruned as exc:
            raise optuna.TrialPruned(str(exc)) from exc
        results[trial.number] = result
        trial.set_user_attr("model_dir", str(result.model_dir))
        trial.set_user_attr("run_id", result.run_id)
        value = result.fit.best_metric
        if value is None:
            value = float(result.metrics.get("loss", float("nan")))
        return float(value)

    try:
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
        out = _result(study, name, storage)
        if register and out.best_model_dir is not None and out.best_trial is not None:
            out.registered_version = _register_best(base, settings, db, study, out)
        return out
    finally:
        if own_db:
            db.dispose()


def _result(study: optuna.Study, name: str, storage: optuna.storages.RDBStorage) -> HPOResult:
    trials = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params)}
        for t in study.get_trials(deepcopy=False)
    ]
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return HPOResult(name, _display(storage), None, None, {}, trials)
    best = study.best_trial
    folder = best.user_attrs.get("model_dir")
    return HPOResult(
        study_name=name,
        storage=_display(storage),
        best_trial=best.number,
        best_value=best.value,
        best_params=dict(best.params),
        trials=trials,
        best_model_dir=Path(folder) if folder else None,
    )


def _register_best(
    base: TrainingConfig, settings: Settings, db: Database, study: optuna.Study, out: HPOResult
) -> int | None:
    from gpt2_agent.registry import Registry

    assert out.best_model_dir is not None
    if not out.best_model_dir.is_dir():
        logger.warning("best trial's model folder %s is gone; nothing registered", out.best_model_dir)
        return None
    registry = Registry(settings, db)
    name = base.publish.name or base.name
    lineage = {
        "hpo": {
            "study": out.study_name,
            "trial": out.best_trial,
            "params": out.best_params,
            "value": out.best_value,
        }
    }
    info = registry.register(
        out.best_model_dir,
        name,
        task=REGISTRY_TASKS.get(base.model.task),
        description=base.publish.description,
        lineage=lineage,
        created_by=base.publish.created_by,
    )
    registry.set_alias(
        name,
        base.publish.alias or "candidate",
        info.version,
        by=base.publish.created_by,
        reason=f"best of HPO study {out.study_name} (trial {out.best_trial})",
    )
    logger.info("registered the best trial (%s) as %s:%s", out.best_trial, name, info.version)
    return info.version


def _display(storage: optuna.storages.RDBStorage) -> str:
    return make_url(storage.url).render_as_string(hide_password=True)


__all__ = ["DEFAULT_SPACE", "HPOResult", "TrialPruned", "hpo_storage", "run_hpo"]
