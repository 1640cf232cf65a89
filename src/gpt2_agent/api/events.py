"""Server-Sent Events from the append-only event table (works across API replicas)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from gpt2_agent.api.schemas import EventOut
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.states import TERMINAL_RUN_STATES, TERMINAL_TASK_STATES

POLL_SECONDS = 0.25


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


async def event_stream(
    request: Request, engine: Engine, *, task_id: int | None = None, run_id: int | None = None
) -> AsyncIterator[dict[str, str]]:
    """Yield events after ``Last-Event-ID``; ends once the task or run is finished."""
    try:
        last = int(request.headers.get("last-event-id", "0"))
    except ValueError:
        last = 0
    while True:
        events = await run_in_threadpool(engine.task_events, task_id=task_id, run_id=run_id, after_id=last)
        for event in events:
            last = event.id
            data = EventOut.model_validate(event).model_dump(mode="json")
            yield {"id": str(event.id), "event": "transition", "data": json.dumps(data)}
        if task_id is not None:
            done = (await run_in_threadpool(engine.get_task, task_id)).status in TERMINAL_TASK_STATES
        else:
            assert run_id is not None
            done = (await run_in_threadpool(engine.get_run, run_id)).status in TERMINAL_RUN_STATES
        if done and not events:
            yield {"event": "end", "data": "{}"}
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)
