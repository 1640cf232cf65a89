"""Training runs: start one from a shipped config with editable knobs, follow its curves."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from gpt2_agent.api.deps import AdminDep, DbDep, EngineDep, Id, PageDep, PrincipalDep
from gpt2_agent.api.schemas import PageOut
from gpt2_agent.api.training_jobs import TRAIN_TASK, shipped_configs
from gpt2_agent.store.training_tables import TrainingMetric, TrainingRun, create_run

router = APIRouter(tags=["training"])

# The knobs the console exposes, as config keys (the design's "learning rate, batch size,
# update frequency").
KNOBS = {
    "learning_rate": "train.lr",
    "batch_size": "train.batch_size",
    "grad_accum_steps": "train.grad_accum",
}


class TrainingOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    learning_rate: float | None = Field(default=None, gt=0, le=1)
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    grad_accum_steps: int | None = Field(default=None, ge=1, le=1024)


class TrainingRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+\.toml$")]
    overrides: TrainingOverrides = Field(default_factory=TrainingOverrides)


class TrainingRunOut(BaseModel):
    id: int
    name: str
    status: str
    model_name: str | None
    registered_version: int | None
    task_id: int | None = None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class CurvePoint(BaseModel):
    step: int
    loss: float | None = None
    val_loss: float | None = None


class TrainingRunDetail(TrainingRunOut):
    config: dict[str, Any]
    history: list[CurvePoint]
    evaluation: dict[str, Any] | None


class ConfigOut(BaseModel):
    name: str


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _out(run: TrainingRun) -> dict[str, Any]:
    config = run.config or {}
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "model_name": run.model_name,
        "registered_version": run.registered_version,
        "task_id": (config.get("_task") or {}).get("id") if isinstance(config, dict) else None,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def _evaluation(run: TrainingRun) -> dict[str, Any] | None:
    """The full evaluation (confusion matrix, calibration bins) from the run's metrics.json,
    falling back to the summary kept in the database."""
    if run.output_dir:
        path = Path(run.output_dir) / "metrics.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    return dict(_finite(data))
            except (OSError, ValueError):
                pass
    return _finite(dict(run.metrics)) if run.metrics else None


@router.get("/training-configs", response_model=list[ConfigOut])
def list_configs(_: PrincipalDep) -> list[dict[str, str]]:
    """Training configs shipped with the product that the API can run."""
    from gpt2_agent.api.training_jobs import configs_dir
    from gpt2_agent.nlu.train import is_nlu_config

    return [{"name": name} for name in shipped_configs() if not is_nlu_config(configs_dir() / name)]


@router.post("/training-runs", status_code=201, response_model=TrainingRunOut)
def start_training(
    body: TrainingRunCreate, request: Request, db: DbDep, engine: EngineDep, principal: AdminDep
) -> Any:
    """Queue a training run of a shipped config with the given knobs (admin)."""
    if body.config not in shipped_configs():
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"config: unknown config {body.config!r}; shipped: {', '.join(shipped_configs())}",
        )
    overrides = [f"{KNOBS[k]}={v}" for k, v in body.overrides.model_dump(exclude_none=True).items()]
    run_id = create_run(
        db, name=body.config.removesuffix(".toml"), config={"file": body.config, "overrides": overrides}
    )
    submitted = engine.submit_task(
        TRAIN_TASK,
        {"training_run_id": run_id, "config": body.config, "overrides": overrides},
        submitted_by=principal.name,
    )
    with db.write_session() as session:  # read-then-write: take SQLite's write lock up front
        run = session.get(TrainingRun, run_id)
        assert run is not None
        run.config = {**(run.config or {}), "_task": {"id": submitted.id}}
    with db.session() as session:
        fresh = session.get(TrainingRun, run_id)
        assert fresh is not None
        return _out(fresh)


@router.get("/training-runs", response_model=PageOut[TrainingRunOut])
def list_training_runs(db: DbDep, _: PrincipalDep, page: PageDep) -> dict[str, Any]:
    """Training runs, newest first."""
    limit, offset = page
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(TrainingRun)) or 0
        rows = list(
            session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit).offset(offset))
        )
    return {"items": [_out(r) for r in rows], "total": total, "limit": limit, "offset": offset}


@router.get("/training-runs/{run_id}", response_model=TrainingRunDetail)
def read_training_run(run_id: Id, db: DbDep, _: PrincipalDep) -> dict[str, Any]:
    """A run with its loss curves (train and validation) and, when done, its evaluation."""
    with db.session() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"training run {run_id} not found")
        rows = session.execute(
            select(TrainingMetric.step, TrainingMetric.split, TrainingMetric.value)
            .where(TrainingMetric.run_id == run_id, TrainingMetric.name == "loss")
            .order_by(TrainingMetric.step)
        ).all()
    points: dict[int, dict[str, Any]] = {}
    for step, split, value in rows:
        point = points.setdefault(step, {"step": step})
        point["val_loss" if split == "val" else "loss"] = _finite(value)
    evaluation = _evaluation(run)
    if evaluation and isinstance(evaluation.get("calibration"), dict):
        bins = [b for b in evaluation["calibration"].get("bins", []) if b.get("count")]
        evaluation["reliability"] = {
            "confidence": [b["confidence"] for b in bins],
            "accuracy": [b["accuracy"] for b in bins],
        }
    return {
        **_out(run),
        "config": run.config or {},
        "history": list(points.values()),
        "evaluation": evaluation,
    }
