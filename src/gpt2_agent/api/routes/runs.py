"""Workflows and their runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from gpt2_agent.api.deps import EngineDep, Id, PageDep, Principal, PrincipalDep
from gpt2_agent.api.events import event_stream, wants_json
from gpt2_agent.api.schemas import (
    EventOut,
    PageOut,
    RunCreate,
    RunDetail,
    RunOut,
    RunStatus,
    TaskOut,
    WorkflowOut,
)
from gpt2_agent.engine.core import Engine
from gpt2_agent.store.engine_tables import WorkflowRun

router = APIRouter(tags=["workflows"])

WorkflowName = Annotated[str, Path(max_length=100, pattern=r"^[a-z][a-z0-9_-]*$")]


def visible_run(engine: Engine, run_id: Id, principal: Principal) -> WorkflowRun:
    run = engine.get_run(run_id)
    if not principal.sees_everything and run.submitted_by != principal.name:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    return run


def run_detail(engine: Engine, run: WorkflowRun) -> dict[str, Any]:
    tasks = engine.list_tasks(run_id=run.id, limit=1000).items
    out = RunOut.model_validate(run).model_dump()
    out["tasks"] = [TaskOut.model_validate(t) for t in sorted(tasks, key=lambda t: t.id)]
    return out


@router.get("/workflows", response_model=list[WorkflowOut])
def list_workflows(engine: EngineDep, _: PrincipalDep) -> list[dict[str, Any]]:
    """Workflow definitions this server knows."""
    out = []
    for name in engine.workflows.names():
        defn = engine.workflows.get(name)
        out.append(
            {
                "name": defn.name,
                "description": defn.description,
                "input": dict(defn.input),
                "steps": [s.model_dump(by_alias=True, exclude_none=True) for s in defn.steps],
            }
        )
    return out


@router.post("/workflows/{name}/runs", status_code=201, response_model=RunDetail)
def start_run(
    name: WorkflowName,
    body: RunCreate,
    engine: EngineDep,
    principal: PrincipalDep,
    response: Response,
    key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> dict[str, Any]:
    """Start a run of a workflow. Replaying an Idempotency-Key returns the original run with 200."""
    result = engine.start_run(
        name, body.input, submitted_by=principal.name, idempotency_key=key, scope=principal.name
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return run_detail(engine, engine.get_run(result.id))


@router.get("/runs", response_model=PageOut[RunOut])
def list_runs(
    engine: EngineDep,
    principal: PrincipalDep,
    page: PageDep,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    workflow: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z][a-z0-9_-]*$")] = None,
) -> dict[str, object]:
    """List runs, newest first (submitters see their own)."""
    limit, offset = page
    mine = None if principal.sees_everything else principal.name
    result = engine.list_runs(
        status=status_, workflow=workflow, submitted_by=mine, limit=limit, offset=offset
    )
    return {"items": result.items, "total": result.total, "limit": limit, "offset": offset}


@router.get("/runs/{run_id}", response_model=RunDetail)
def read_run(run_id: Id, engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
    """One run with its steps."""
    return run_detail(engine, visible_run(engine, run_id, principal))


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: Id, engine: EngineDep, principal: PrincipalDep) -> WorkflowRun:
    """Cancel a run and its open step."""
    visible_run(engine, run_id, principal)
    return engine.cancel_run(run_id, by=principal.name)


@router.post("/runs/{run_id}/retry", response_model=RunDetail, responses={409: {"description": "not failed"}})
def retry_run(run_id: Id, engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
    """Resume a failed run at the step that failed."""
    visible_run(engine, run_id, principal)
    return run_detail(engine, engine.retry_run(run_id, by=principal.name))


@router.get(
    "/runs/{run_id}/events",
    response_model=list[EventOut],
    responses={200: {"content": {"text/event-stream": {}, "application/json": {}}}},
)
def run_events(
    run_id: Id, request: Request, engine: EngineDep, principal: PrincipalDep
) -> EventSourceResponse | JSONResponse:
    """Every transition of the run and its steps, as Server-Sent Events or JSON."""
    visible_run(engine, run_id, principal)
    if wants_json(request):
        events = engine.task_events(run_id=run_id)
        return JSONResponse([EventOut.model_validate(e).model_dump(mode="json") for e in events])
    return EventSourceResponse(event_stream(request, engine, run_id=run_id))
