"""Training: start a run from a shipped config with a few editable settings; live loss curves; evaluation.

Built on ``POST/GET /api/v1/training-runs`` (ARCHITECTURE.md) and ``GET /api/v1/training-configs``.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gpt2_agent.web.api import ApiError, SignedOut
from gpt2_agent.web.core import ApiDep, FormDep, SessionDep, WebRoute, redirect, render, render_fragment

router = APIRouter(route_class=WebRoute)

DEFAULT_CONFIG = "order-audit.tiny.toml"
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
    runs = _items(await api.get("/training-runs"))
    configs = await _configs(api)
    values = {"config": DEFAULT_CONFIG if DEFAULT_CONFIG in configs or not configs else configs[0]}
    return render(request, "training.html", runs=runs, configs=configs, values=values, errors={})


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
            if exc.status_code not in (400, 409, 422):
                raise
            errors[""] = exc.detail
        else:
            return redirect(f"/training/{run['id']}")
    runs, configs = _items(await api.get("/training-runs")), await _configs(api)
    return render(request, "training.html", runs=runs, configs=configs, values=form, errors=errors)


def curves(run: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"step": [...], "loss": [...], "val_loss": [...]}`` (uPlot's columns) from a run's ``history``."""
    history = [p for p in run.get("history") or [] if isinstance(p, dict) and "step" in p]
    return {
        "step": [p["step"] for p in history],
        "loss": [_finite(p.get("loss")) for p in history],
        "val_loss": [_finite(p.get("val_loss")) for p in history],
    }


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@router.get("/training/{run_id}", include_in_schema=False)
async def training_run(request: Request, run_id: int, session: SessionDep, api: ApiDep) -> Response:
    """One run: live loss and validation curves; evaluation, confusion matrix and reliability when done."""
    run = await api.get(f"/training-runs/{run_id}")
    evaluation = run.get("evaluation") or {}
    return render(request, "training_run.html", run=run, evaluation=evaluation)


@router.get("/training/{run_id}/data.json", include_in_schema=False)
async def training_data(request: Request, run_id: int, session: SessionDep, api: ApiDep) -> Response:
    """The curves and state, polled by the chart."""
    run = await api.get(f"/training-runs/{run_id}")
    evaluation = run.get("evaluation") or {}
    reliability = evaluation.get("reliability") if isinstance(evaluation, dict) else None
    status = run.get("status")
    body = {
        "status": status,
        # The badge in the page's language, so the page can follow the run without a reload.
        "status_html": render_fragment(request, "partials/status.html", s=status),
        "curves": curves(run),
        "reliability": reliability,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
