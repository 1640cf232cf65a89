"""The approvals inbox: decide parked steps; items leave every open inbox as soon as anyone decides them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette.sse import EventSourceResponse

from gpt2_agent.web.api import ApiError, SignedOut, api_for
from gpt2_agent.web.core import ApiDep, ApproverDep, FormDep, WebRoute, is_htmx, redirect, render

log = logging.getLogger(__name__)
router = APIRouter(route_class=WebRoute)

STREAM_POLL_SECONDS = 1.0
INBOX_LIMIT = 200
# Context keys shown in their own places; everything else is listed as "facts".
KNOWN_KEYS = ("decision", "recommendation", "probability", "reasons", "order", "model_version")


def view(item: dict[str, Any]) -> dict[str, Any]:
    """An approval with its context split into recommendation, probability, reasons and facts."""
    context = item.get("context") or {}
    if not isinstance(context, dict):
        context = {"value": context}
    reasons = context.get("reasons") or []
    if not isinstance(reasons, list):
        reasons = [reasons]
    facts = dict(context.get("order") or {}) if isinstance(context.get("order"), dict) else {}
    facts.update({k: v for k, v in context.items() if k not in KNOWN_KEYS})
    probability = context.get("probability")
    return {
        **item,
        "recommendation": context.get("recommendation") or context.get("decision"),
        "probability": probability if isinstance(probability, int | float) else None,
        "reasons": [_reason(r) for r in reasons],
        "model_version": context.get("model_version"),
        "facts": facts,
    }


def _reason(reason: Any) -> dict[str, Any]:
    if isinstance(reason, dict):
        label = reason.get("field") or reason.get("name") or reason.get("feature") or ""
        weight = reason.get("delta", reason.get("weight", reason.get("impact", reason.get("score"))))
        return {
            "label": str(label),
            "value": reason.get("value"),
            "weight": weight,
            "text": reason.get("text"),
        }
    return {"label": "", "value": None, "weight": None, "text": str(reason)}


async def _pending(request: Request, api: Any) -> list[dict[str, Any]]:
    page = await api.get("/approvals", status="pending", limit=INBOX_LIMIT)
    return [view(item) for item in page["items"]]


@router.get("/approvals", include_in_schema=False)
async def inbox(
    request: Request, session: ApproverDep, api: ApiDep, done: str = "", item: int = 0
) -> Response:
    """Pending approvals, oldest first."""
    items = await _pending(request, api)
    flash = {"decision": done, "id": item} if done in ("approve", "reject", "conflict") else None
    return render(request, "approvals.html", items=items, flash=flash)


@router.get("/approvals/items", include_in_schema=False)
async def inbox_items(request: Request, session: ApproverDep, api: ApiDep) -> Response:
    """The inbox's items alone (the page adds the ones it does not show yet)."""
    return render(request, "partials/approval_items.html", items=await _pending(request, api))


@router.post("/approvals/{approval_id}/decide", include_in_schema=False)
async def decide(
    request: Request, approval_id: int, session: ApproverDep, api: ApiDep, form: FormDep
) -> Response:
    """Approve or reject with a comment; errors are shown beside the item in the page's language."""
    decision = form.get("decision", "")
    comment = form.get("comment", "").strip() or None
    errors: dict[str, str] = {}
    if decision not in ("approve", "reject"):
        errors["decision"] = "approvals.error.decision"
    elif comment is not None and len(comment) > 4000:
        errors["comment"] = "approvals.error.comment_long"
    if not errors:
        try:
            await api.post(f"/approvals/{approval_id}/decision", {"decision": decision, "comment": comment})
        except SignedOut:
            raise
        except ApiError as exc:
            if exc.status_code == 409 or exc.status_code == 404:
                return _gone(request, approval_id)
            if exc.status_code == 403:
                errors["decision"] = "approvals.error.four_eyes"
            elif exc.status_code == 422:
                errors["comment"] = "approvals.error.invalid"
            else:
                raise
        else:
            if is_htmx(request):
                return render(request, "partials/decided.html", decision=decision, approval_id=approval_id)
            return redirect(f"/approvals?done={decision}&item={approval_id}")
    # Show the item again with the error beside the field, keeping what was typed.
    try:
        item = view(await api.get(f"/approvals/{approval_id}"))
    except ApiError as exc:
        if exc.status_code == 404:
            return _gone(request, approval_id)
        raise
    if item.get("status") != "pending":
        return _gone(request, approval_id)
    if is_htmx(request):
        return render(request, "partials/approval_item.html", item=item, errors=errors, comment=comment or "")
    items = await _pending(request, api)
    return render(
        request,
        "approvals.html",
        items=items,
        flash=None,
        errors_for=approval_id,
        errors=errors,
        comment=comment,
    )


def _gone(request: Request, approval_id: int) -> Response:
    """Someone else decided first (or it was cancelled): the item leaves the inbox with a note."""
    if is_htmx(request):
        return render(request, "partials/decided.html", decision="conflict", approval_id=approval_id)
    return redirect(f"/approvals?done=conflict&item={approval_id}")


@router.get("/approvals/stream", include_in_schema=False)
async def inbox_stream(request: Request, session: ApproverDep) -> EventSourceResponse:
    """Server-Sent Events: ``pending`` with the ids still pending, whenever that set changes."""
    key = session.key

    async def events() -> AsyncIterator[dict[str, str]]:
        last: list[int] | None = None
        async with api_for(request.app, key) as api:
            while not await request.is_disconnected():
                try:
                    page = await api.get("/approvals", status="pending", limit=INBOX_LIMIT)
                except SignedOut:
                    yield {"event": "signedout", "data": "{}"}
                    return
                except ApiError as exc:
                    log.warning("inbox stream: HTTP %s %s", exc.status_code, exc.detail)
                    await asyncio.sleep(STREAM_POLL_SECONDS * 5)
                    continue
                ids = [int(item["id"]) for item in page["items"]]
                if ids != last:
                    last = ids
                    yield {"event": "pending", "data": json.dumps({"ids": ids, "total": page["total"]})}
                await asyncio.sleep(STREAM_POLL_SECONDS)

    return EventSourceResponse(events(), headers={"Cache-Control": "no-store"})
