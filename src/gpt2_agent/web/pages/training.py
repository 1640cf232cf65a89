"""Training: start a run from a shipped config with a few editable settings; live loss curves; evaluation.

Built against ``POST/GET /api/v1/training-runs`` (ARCHITECTURE.md) and ``GET /api/v1/training-configs``;
while the server lacks them the page says so.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gpt2_agent.web.api import ApiError, SignedOut
from gpt2_agent.web.core import ApiDep, FormDep, SessionDep, WebRoute, redirect, render

router = APIRouter(route_class=WebRoute)

DEFAULT_CONFIG = "order-audit.tiny"
# Form field → (override key sent to the API, type, lower bound, upper bound).
OVERRIDES: dict[str, tuple[str, type, float, float]] = {
    "learning_rate": ("learning_rate", float, 1e-7, 1.0),
    "batch_size": ("batch_size", int, 1, 4096),
    "grad_accum_steps": ("grad_accum_steps", int, 1, 1024),
}


def _items(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        return list(result.get("items", []))
    return list(result or [])


async def _configs(api: Any) -> list[str]:
    try:
        configs = _items(await api.get("/training-configs"))
    except SignedOut:
        raise
    except ApiError:
        return []
    return [c["name"] if isinstance(c, dict) else str(c) for c in configs]


@router.get("/training", include_in_schema=False)
async def training_page(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """Recent training runs and the form to start one."""
    try:
        runs = _items(await api.get("/training-runs"))
    except ApiError as exc:
        if exc.route_missing:
            return render(
                request, "training.html", unavailable=True, runs=[], configs=[], values={}, errors={}
            )
        raise
    configs = await _configs(api)
    values = {"config": configs[0] if configs else DEFAULT_CONFIG}
    return render(
        request, "training.html", unavailable=False, runs=runs, configs=configs, values=values, errors={}
    )


def parse_overrides(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Overrides from the optional fields; errors are message keys per field."""
    overrides: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, (key, kind, low, high) in OVERRIDES.items():
        raw = form.get(field, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            errors[field] = "form.type.integer" if kind is int else "form.type.number"
            continue
        if isinstance(value, float) and not math.isfinite(value):
            errors[field] = "form.type.number"
        elif not low <= value <= high:
            errors[field] = "training.error.range"
        else:
            overrides[key] = value
    return overrides, errors


@router.post("/training", include_in_schema=False)
async def start_training(request: Request, session: SessionDep, api: ApiDep, form: FormDep) -> Response:
    """Start a training run; errors beside the fields."""
    config = form.get("config", "").strip()
    overrides, errors = parse_overrides(form)
    if not config:
        errors["config"] = "form.required"
    if not errors:
        try:
            run = await api.post("/training-runs", {"config": config, "overrides": overrides})
        except SignedOut:
            raise
        except ApiError as exc:
            if exc.route_missing:
                return render(
                    request, "training.html", unavailable=True, runs=[], configs=[], values={}, errors={}
                )
            if exc.status_code not in (400, 409, 422):
                raise
            errors[""] = exc.detail
        else:
            return redirect(f"/training/{run['id']}")
    runs = _items(await api.get("/training-runs"))
    return render(
        request,
        "training.html",
        unavailable=False,
        runs=runs,
        configs=await _configs(api),
        values=form,
        errors=errors,
    )


def curves(run: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"step": [...], "loss": [...], "val_loss": [...]}`` from a run's history, whatever its shape."""
    history = run.get("history") or run.get("metrics_history") or run.get("points") or []
    steps: list[Any] = []
    loss: list[Any] = []
    val: list[Any] = []
    for point in history if isinstance(history, list) else []:
        if not isinstance(point, dict) or "step" not in point:
            continue
        steps.append(point["step"])
        loss.append(_finite(point.get("loss", point.get("train_loss"))))
        val.append(_finite(point.get("val_loss", point.get("eval_loss"))))
    return {"step": steps, "loss": loss, "val_loss": val}


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@router.get("/training/{run_id}", include_in_schema=False)
async def training_run(request: Request, run_id: int, session: SessionDep, api: ApiDep) -> Response:
    """One run: live loss and validation curves; evaluation, confusion matrix and reliability when done."""
    try:
        run = await api.get(f"/training-runs/{run_id}")
    except ApiError as exc:
        if exc.route_missing:
            return render(request, "training_run.html", unavailable=True, run={}, evaluation={})
        raise
    evaluation = run.get("evaluation") or run.get("metrics") or {}
    return render(request, "training_run.html", unavailable=False, run=run, evaluation=evaluation)


@router.get("/training/{run_id}/data.json", include_in_schema=False)
async def training_data(request: Request, run_id: int, session: SessionDep, api: ApiDep) -> Response:
    """The curves and state, polled by the chart."""
    run = await api.get(f"/training-runs/{run_id}")
    evaluation = run.get("evaluation") or run.get("metrics") or {}
    reliability = evaluation.get("reliability") if isinstance(evaluation, dict) else None
    body = {"status": run.get("status"), "curves": curves(run), "reliability": reliability}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
