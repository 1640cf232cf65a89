"""Dashboard: counts by state, throughput over the last hour, automation rate, the automation gate's
policy and cost per order, recent work (all live)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gpt2_agent.web import i18n
from gpt2_agent.web.api import Api, ApiError
from gpt2_agent.web.core import ApiDep, SessionDep, WebRoute, render
from gpt2_agent.web.security import Session

router = APIRouter(route_class=WebRoute)

TASK_STATES = ("queued", "running", "waiting_approval", "succeeded", "failed", "cancelled")
RUN_STATES = ("queued", "running", "waiting_approval", "succeeded", "failed", "cancelled", "rejected")
APPROVAL_STATES = ("pending", "approved", "rejected", "cancelled")
RECENT = 8
# The API lists at most this many per page; the chart reads a few pages of the newest tasks.
PAGE = 200
MAX_PAGES = 5


def _signature(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _total(result: Any) -> int | None:
    return int(result["total"]) if isinstance(result, dict) and "total" in result else None


async def _counts(api: Api, session: Session) -> dict[str, Any]:
    calls = [api.get("/tasks", status=s, limit=1) for s in TASK_STATES]
    calls += [api.get("/runs", status=s, limit=1) for s in RUN_STATES]
    sees_approvals = session.at_least("approver")
    if sees_approvals:
        calls += [api.get("/approvals", status=s, limit=1) for s in APPROVAL_STATES]
    results = await api.gather(*calls)
    tasks = {s: _total(r) for s, r in zip(TASK_STATES, results[: len(TASK_STATES)], strict=True)}
    runs_part = results[len(TASK_STATES) : len(TASK_STATES) + len(RUN_STATES)]
    runs = {s: _total(r) for s, r in zip(RUN_STATES, runs_part, strict=True)}
    automation: dict[str, Any] | None = None
    if sees_approvals:
        approvals_part = results[len(TASK_STATES) + len(RUN_STATES) :]
        approvals = {s: _total(r) or 0 for s, r in zip(APPROVAL_STATES, approvals_part, strict=True)}
        escalated = sum(approvals.values())
        all_runs = sum(v or 0 for v in runs.values())
        automatic = max(all_runs - escalated, 0)
        automation = {
            "escalated": escalated,
            "automatic": automatic,
            "rate": (automatic / all_runs) if all_runs else None,
            "pending": approvals["pending"],
        }
    return {"tasks": tasks, "runs": runs, "automation": automation}


async def _gate(api: Api, session: Session) -> dict[str, Any] | None:
    """The gate section of ``GET /stats`` (approvers and admins only; None for others or on error)."""
    if not session.at_least("approver"):
        return None
    try:
        stats = await api.get("/stats")
    except ApiError:
        return None
    gate = stats.get("gate") if isinstance(stats, dict) else None
    return gate if isinstance(gate, dict) else None


async def _recent(api: Api) -> dict[str, Any]:
    tasks, runs = await api.gather(api.get("/tasks", limit=RECENT), api.get("/runs", limit=RECENT))
    return {
        "tasks": tasks["items"] if isinstance(tasks, dict) else [],
        "runs": runs["items"] if isinstance(runs, dict) else [],
    }


@router.get("/", include_in_schema=False)
async def dashboard(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """The dashboard page."""
    counts = await _counts(api, session)
    recent = await _recent(api)
    gate = await _gate(api, session)
    return render(
        request,
        "dashboard.html",
        counts=counts,
        counts_sig=_signature(counts),
        recent=recent,
        recent_sig=_signature(recent),
        gate=gate,
        gate_sig=_signature(gate),
    )


@router.get("/dashboard/counts", include_in_schema=False)
async def dashboard_counts(request: Request, session: SessionDep, api: ApiDep, sig: str = "") -> Response:
    """The counts panel (polled); 204 when nothing changed, so the page does not flicker."""
    counts = await _counts(api, session)
    new_sig = _signature(counts)
    if sig == new_sig:
        return Response(status_code=204)
    return render(request, "partials/counts.html", counts=counts, counts_sig=new_sig)


@router.get("/dashboard/gate", include_in_schema=False)
async def dashboard_gate(request: Request, session: SessionDep, api: ApiDep, sig: str = "") -> Response:
    """The automation gate panel (polled); 204 when nothing changed or the user may not see it."""
    if not session.at_least("approver"):
        return Response(status_code=204)
    gate = await _gate(api, session)
    new_sig = _signature(gate)
    if sig == new_sig:
        return Response(status_code=204)
    return render(request, "partials/gate.html", gate=gate, gate_sig=new_sig)


@router.get("/dashboard/recent", include_in_schema=False)
async def dashboard_recent(request: Request, session: SessionDep, api: ApiDep, sig: str = "") -> Response:
    """Recent tasks and runs (polled); 204 when nothing changed."""
    recent = await _recent(api)
    new_sig = _signature(recent)
    if sig == new_sig:
        return Response(status_code=204)
    return render(request, "partials/recent.html", recent=recent, recent_sig=new_sig)


@router.get("/dashboard/throughput.json", include_in_schema=False)
async def throughput(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """Tasks finished per minute over the last hour: ``{"t": [unix], "succeeded": [n], "failed": [n]}``."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = now - dt.timedelta(minutes=59)
    minutes = [start + dt.timedelta(minutes=i) for i in range(60)]
    series: dict[str, list[int]] = {}
    for state in ("succeeded", "failed"):
        buckets = [0] * 60
        offset = 0
        for _ in range(MAX_PAGES):
            try:
                result = await api.get("/tasks", status=state, limit=PAGE, offset=offset)
            except ApiError:
                break
            items = result.get("items", [])
            limit = int(result.get("limit") or PAGE)  # the server may cap the page size
            offset += limit
            for item in items:
                finished = i18n.parse_datetime(item.get("finished_at"))
                if finished is None or finished < start:
                    continue
                index = int((finished - start).total_seconds() // 60)
                if 0 <= index < 60:
                    buckets[index] += 1
            # Tasks are listed newest first by creation: once a page was created before the window, stop.
            oldest = i18n.parse_datetime(items[-1].get("created_at")) if items else None
            if len(items) < limit or (oldest is not None and oldest < start):
                break
        series[state] = buckets
    body = {"t": [int(m.timestamp()) for m in minutes], **series}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
