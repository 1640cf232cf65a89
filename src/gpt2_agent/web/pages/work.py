"""Tasks, runs and workflows: lists, detail pages with a live timeline, start, retry and cancel."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette.sse import EventSourceResponse

from gpt2_agent.web.api import Api, ApiError, SignedOut, api_for
from gpt2_agent.web.core import (
    ApiDep,
    FormDep,
    SessionDep,
    WebRoute,
    redirect,
    render,
    render_fragment,
)

log = logging.getLogger(__name__)
router = APIRouter(route_class=WebRoute)

PAGE_SIZE = 25
STREAM_POLL_SECONDS = 0.5
TASK_STATES = ("queued", "running", "waiting_approval", "succeeded", "failed", "cancelled")
RUN_STATES = (*TASK_STATES, "rejected")
TERMINAL = {"succeeded", "failed", "cancelled", "rejected"}
Kind = Literal["task", "run"]


def _links(outputs: list[Any]) -> dict[str, list[Any]]:
    """Files (receipts, attachments) and e-mails that steps report in their outputs."""
    files: list[int] = []
    mails: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key.endswith("file_id") and isinstance(value, int) and value not in files:
            files.append(value)
        elif key == "message_id" and isinstance(value, str) and value not in mails:
            mails.append(value)

    for output in outputs:
        walk(output)
    return {"files": files, "mails": mails}


def _status_filter(status: str, allowed: tuple[str, ...]) -> str | None:
    return status if status in allowed else None


@router.get("/tasks", include_in_schema=False)
async def task_list(
    request: Request, session: SessionDep, api: ApiDep, status: str = "", offset: int = 0
) -> Response:
    """Tasks, newest first, filtered by state."""
    offset = max(offset, 0)
    page = await api.get("/tasks", status=_status_filter(status, TASK_STATES), limit=PAGE_SIZE, offset=offset)
    return render(request, "tasks.html", page=page, status=status, states=TASK_STATES, page_size=PAGE_SIZE)


@router.get("/runs", include_in_schema=False)
async def run_list(
    request: Request, session: SessionDep, api: ApiDep, status: str = "", offset: int = 0
) -> Response:
    """Runs, newest first, filtered by state."""
    offset = max(offset, 0)
    page = await api.get("/runs", status=_status_filter(status, RUN_STATES), limit=PAGE_SIZE, offset=offset)
    return render(request, "runs.html", page=page, status=status, states=RUN_STATES, page_size=PAGE_SIZE)


async def _task_view(api: Api, task_id: int) -> dict[str, Any]:
    task = await api.get(f"/tasks/{task_id}")
    return {"task": task, "links": _links([task.get("output")])}


async def _run_view(api: Api, run_id: int) -> dict[str, Any]:
    run = await api.get(f"/runs/{run_id}")
    approval = None
    if run["status"] == "waiting_approval":
        # Which approval to open from here (approvers only; others just see the state).
        try:
            pending = await api.get("/approvals", status="pending", limit=200)
            approval = next((a for a in pending["items"] if a["run_id"] == run_id), None)
        except ApiError:
            approval = None
    links = _links([run.get("output")] + [t.get("output") for t in run.get("tasks", [])])
    return {"run": run, "approval": approval, "links": links}


@router.get("/tasks/{task_id}", include_in_schema=False)
async def task_page(request: Request, task_id: int, session: SessionDep, api: ApiDep) -> Response:
    """One task: summary, input and output, and its live timeline."""
    # Events first: the state read after them is at least as new, and later events arrive by stream.
    events = await api.get(f"/tasks/{task_id}/events")
    view = await _task_view(api, task_id)
    return render(
        request, "task.html", **view, events=events, last_event=max((e["id"] for e in events), default=0)
    )


@router.get("/tasks/{task_id}/summary", include_in_schema=False)
async def task_summary(request: Request, task_id: int, session: SessionDep, api: ApiDep) -> Response:
    """The task's summary panel (refreshed when its state changes)."""
    return render(request, "partials/task_summary.html", **await _task_view(api, task_id))


@router.get("/runs/{run_id}", include_in_schema=False)
async def run_page(request: Request, run_id: int, session: SessionDep, api: ApiDep) -> Response:
    """One run: summary, steps, input and output, linked files and mails, and its live timeline."""
    events = await api.get(f"/runs/{run_id}/events")  # before the state, as for tasks
    view = await _run_view(api, run_id)
    return render(
        request, "run.html", **view, events=events, last_event=max((e["id"] for e in events), default=0)
    )


@router.get("/runs/{run_id}/summary", include_in_schema=False)
async def run_summary(request: Request, run_id: int, session: SessionDep, api: ApiDep) -> Response:
    """The run's summary panel (refreshed when its state changes)."""
    return render(request, "partials/run_summary.html", **await _run_view(api, run_id))


def _stream(request: Request, key: str, kind: Kind, ident: int, after: int) -> EventSourceResponse:
    """Timeline rows as Server-Sent Events (``transition`` carries the row's HTML), then ``end``."""
    path = f"/{kind}s/{ident}"
    last_header = request.headers.get("last-event-id", "")
    last = int(last_header) if last_header.isdigit() else max(after, 0)

    async def events() -> AsyncIterator[dict[str, str]]:
        nonlocal last
        async with api_for(request.app, key) as api:
            while not await request.is_disconnected():
                try:
                    batch = [e for e in await api.get(f"{path}/events") if e["id"] > last]
                    status = (await api.get(path))["status"]
                except SignedOut:
                    yield {"event": "signedout", "data": "{}"}
                    return
                except ApiError as exc:
                    log.warning("timeline stream %s: HTTP %s %s", path, exc.status_code, exc.detail)
                    yield {"event": "end", "data": "{}"}
                    return
                for event in batch:
                    last = event["id"]
                    html = render_fragment(request, "partials/event.html", e=event, kind=kind)
                    yield {
                        "id": str(last),
                        "event": "transition",
                        "data": json.dumps({"html": html, "to": event["to_state"]}),
                    }
                if status in TERMINAL and not batch:
                    yield {"event": "end", "data": json.dumps({"status": status})}
                    return
                await asyncio.sleep(STREAM_POLL_SECONDS)

    return EventSourceResponse(events(), headers={"Cache-Control": "no-store"})


@router.get("/tasks/{task_id}/stream", include_in_schema=False)
async def task_stream(
    request: Request, task_id: int, session: SessionDep, after: int = 0
) -> EventSourceResponse:
    return _stream(request, session.key, "task", task_id, after)


@router.get("/runs/{run_id}/stream", include_in_schema=False)
async def run_stream(
    request: Request, run_id: int, session: SessionDep, after: int = 0
) -> EventSourceResponse:
    return _stream(request, session.key, "run", run_id, after)


@router.post("/tasks/{task_id}/cancel", include_in_schema=False)
async def cancel_task(
    request: Request, task_id: int, session: SessionDep, api: ApiDep, form: FormDep
) -> Response:
    """Cancel a task (its whole run, for a workflow step)."""
    await _ignore_conflict(api.post(f"/tasks/{task_id}/cancel"))
    return redirect(f"/tasks/{task_id}")


@router.post("/runs/{run_id}/cancel", include_in_schema=False)
async def cancel_run(
    request: Request, run_id: int, session: SessionDep, api: ApiDep, form: FormDep
) -> Response:
    """Cancel a run and its open step."""
    await _ignore_conflict(api.post(f"/runs/{run_id}/cancel"))
    return redirect(f"/runs/{run_id}")


async def _ignore_conflict(call: Any) -> None:
    # Finished in the meantime: the page shows the final state, which answers the user's question.
    try:
        await call
    except ApiError as exc:
        if exc.status_code != 409:
            raise


@router.post("/tasks/{task_id}/retry", include_in_schema=False)
async def retry_task(
    request: Request, task_id: int, session: SessionDep, api: ApiDep, form: FormDep
) -> Response:
    """Submit the same task again (a new task with the same type and input)."""
    task = await api.get(f"/tasks/{task_id}")
    new = await api.post("/tasks", {"type": task["type"], "input": task["input"]})
    return redirect(f"/tasks/{new['id']}")


@router.post("/runs/{run_id}/retry", include_in_schema=False)
async def retry_run(
    request: Request, run_id: int, session: SessionDep, api: ApiDep, form: FormDep
) -> Response:
    """Start the same workflow again with the same input."""
    run = await api.get(f"/runs/{run_id}")
    new = await api.post(f"/workflows/{run['workflow']}/runs", {"input": run["input"]})
    return redirect(f"/runs/{new['id']}")


@router.get("/workflows", include_in_schema=False)
async def workflows(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """Workflows this server runs."""
    return render(request, "workflows.html", workflows=await api.get("/workflows"))


async def _workflow(api: Api, name: str) -> dict[str, Any] | None:
    return next((w for w in await api.get("/workflows") if w["name"] == name), None)


@router.get("/workflows/{name}", include_in_schema=False)
async def start_form(request: Request, name: str, session: SessionDep, api: ApiDep) -> Response:
    """A form with one labelled field per declared input."""
    workflow = await _workflow(api, name)
    if workflow is None:
        raise ApiError(404, f"workflow {name} not found")
    return render(request, "workflow_start.html", workflow=workflow, values={}, errors={})


def parse_inputs(spec: dict[str, str], form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed input from form fields; errors are message keys per field."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kind in spec.items():
        raw = form.get(f"in.{name}", "")
        if kind == "boolean":
            values[name] = raw == "on"
            continue
        if raw.strip() == "":
            errors[name] = "form.required"
            continue
        try:
            if kind == "integer":
                values[name] = int(raw.strip())
            elif kind == "number":
                number = float(raw.strip())
                if number != number or number in (float("inf"), float("-inf")):
                    raise ValueError(raw)
                values[name] = number
            elif kind == "string":
                values[name] = raw
            else:
                parsed = json.loads(raw)
                if kind == "object" and not isinstance(parsed, dict):
                    raise ValueError(raw)
                if kind == "array" and not isinstance(parsed, list):
                    raise ValueError(raw)
                values[name] = parsed
        except ValueError:
            errors[name] = f"form.type.{kind}"
    return values, errors


@router.post("/workflows/{name}", include_in_schema=False)
async def start_run(request: Request, name: str, session: SessionDep, api: ApiDep, form: FormDep) -> Response:
    """Start a run; errors are shown beside the fields."""
    workflow = await _workflow(api, name)
    if workflow is None:
        raise ApiError(404, f"workflow {name} not found")
    values, errors = parse_inputs(workflow["input"], form)
    api_errors: dict[str, str] = {}
    if not errors:
        try:
            run = await api.post(f"/workflows/{name}/runs", {"input": values})
        except SignedOut:
            raise
        except ApiError as exc:
            if exc.status_code != 422:
                raise
            api_errors = exc.field_errors("input.") or {"": exc.detail}
        else:
            return redirect(f"/runs/{run['id']}")
    typed = {k[3:]: v for k, v in form.items() if k.startswith("in.")}
    return render(
        request, "workflow_start.html", workflow=workflow, values=typed, errors=errors, api_errors=api_errors
    )


@router.get("/files/{file_id}", include_in_schema=False)
async def download(request: Request, file_id: int, session: SessionDep, api: ApiDep) -> Response:
    """A stored file (receipt, attachment), downloaded with the user's rights."""
    await api.get(f"/files/{file_id}")  # 404 for files this user may not see
    response = await api.request("GET", f"/files/{file_id}/content")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if "content-disposition" in response.headers:
        headers["Content-Disposition"] = response.headers["content-disposition"]
    return Response(response.content, media_type="application/octet-stream", headers=headers)
