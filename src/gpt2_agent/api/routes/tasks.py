"""Tasks: submit, read, list, cancel, and follow their events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from gpt2_agent.api.deps import EngineDep, Id, PageDep, Principal, PrincipalDep
from gpt2_agent.api.events import event_stream, wants_json
from gpt2_agent.api.schemas import EventOut, PageOut, TaskCreate, TaskOut, TaskStatus
from gpt2_agent.engine.core import Engine
from gpt2_agent.store.engine_tables import Task

router = APIRouter(prefix="/tasks", tags=["tasks"])

IdempotencyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="Same key + same body → the original task"),
]


def visible_task(engine: Engine, task_id: Id, principal: Principal) -> Task:
    """The task, or 404 if it does not exist or belongs to someone else (submitters see their own)."""
    task = engine.get_task(task_id)
    if not principal.sees_everything and task.submitted_by != principal.name:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"task {task_id} not found")
    return task


@router.post("", status_code=201, response_model=TaskOut, responses={200: {"model": TaskOut}})
def create_task(
    body: TaskCreate,
    engine: EngineDep,
    principal: PrincipalDep,
    response: Response,
    key: IdempotencyHeader = None,
) -> Task:
    """Submit a task. Replaying an Idempotency-Key returns the original task with 200."""
    result = engine.submit_task(
        body.type, body.input, submitted_by=principal.name, idempotency_key=key, scope=principal.name
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return engine.get_task(result.id)


@router.get("", response_model=PageOut[TaskOut])
def list_tasks(
    engine: EngineDep,
    principal: PrincipalDep,
    page: PageDep,
    status_: Annotated[TaskStatus | None, Query(alias="status")] = None,
    type_: Annotated[str | None, Query(alias="type", max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
    run_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> dict[str, object]:
    """List tasks, newest first (submitters see their own)."""
    limit, offset = page
    mine = None if principal.sees_everything else principal.name
    result = engine.list_tasks(
        status=status_, type_=type_, submitted_by=mine, run_id=run_id, limit=limit, offset=offset
    )
    return {"items": result.items, "total": result.total, "limit": limit, "offset": offset}


@router.get("/{task_id}", response_model=TaskOut)
def read_task(task_id: Id, engine: EngineDep, principal: PrincipalDep) -> Task:
    """One task with its input, output and error."""
    return visible_task(engine, task_id, principal)


@router.post("/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task_id: Id, engine: EngineDep, principal: PrincipalDep) -> Task:
    """Cancel a queued, running or waiting task (its whole run, for a workflow step)."""
    visible_task(engine, task_id, principal)
    engine.cancel_task(task_id, by=principal.name)
    return engine.get_task(task_id)


@router.post("/{task_id}/retry", response_model=TaskOut, responses={409: {"description": "not retryable"}})
def retry_task(task_id: Id, engine: EngineDep, principal: PrincipalDep) -> Task:
    """Give a failed or cancelled task one more attempt (a failed run resumes at this step)."""
    visible_task(engine, task_id, principal)
    engine.retry(task_id, by=principal.name)
    return engine.get_task(task_id)


@router.get(
    "/{task_id}/events",
    response_model=list[EventOut],
    responses={200: {"content": {"text/event-stream": {}, "application/json": {}}}},
)
def task_events(
    task_id: Id, request: Request, engine: EngineDep, principal: PrincipalDep
) -> EventSourceResponse | JSONResponse:
    """State changes as Server-Sent Events (or a JSON list with ``Accept: application/json``)."""
    visible_task(engine, task_id, principal)
    if wants_json(request):
        events = engine.task_events(task_id=task_id)
        return JSONResponse([EventOut.model_validate(e).model_dump(mode="json") for e in events])
    return EventSourceResponse(event_stream(request, engine, task_id=task_id))
