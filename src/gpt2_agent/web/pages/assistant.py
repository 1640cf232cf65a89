"""Chat (``POST /api/v1/chat``) and order audit (``POST /order/audit`` then an ``order-fulfillment`` run)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gpt2_agent.web.api import ApiError, SignedOut
from gpt2_agent.web.core import ApiDep, FormDep, SessionDep, WebRoute, is_htmx, redirect, render
from gpt2_agent.web.pages.approvals import view as approval_view

router = APIRouter(route_class=WebRoute)

ORDER_NO_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FULFILLMENT = "order-fulfillment"
# The seed-compatible route lives outside /api/v1.
AUDIT_URL = "http://web.internal/order/audit"
MAX_MESSAGE = 2000
API_PATH = re.compile(r"/api/v1/(tasks|runs)/")


def _links(reply: dict[str, Any]) -> list[dict[str, str]]:
    """Links a chat reply carries, kept only when they point into this site."""
    out = []
    for link in reply.get("links") or []:
        if not isinstance(link, dict):
            continue
        href = str(link.get("href") or "")
        if href.startswith("/") and not href.startswith("//"):
            # API links become the console's pages for the same object.
            href = API_PATH.sub(r"/\1/", href)
            out.append({"href": href, "label": str(link.get("label") or href)})
    return out


# API answers the chat form shows as a message in the conversation (anything else is a server error).
CHAT_ERRORS = {
    404: "chat.error.failed",
    409: "chat.error.busy",
    422: "chat.error.failed",
    503: "chat.error.not_ready",
}


@router.get("/chat", include_in_schema=False)
async def chat_page(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """The conversation page (a new conversation each visit)."""
    return render(request, "chat.html", conversation=secrets.token_hex(8), exchanges=[], error=None)


@router.post("/chat", include_in_schema=False)
async def chat(request: Request, session: SessionDep, api: ApiDep, form: FormDep) -> Response:
    """Send one message; htmx appends the exchange, plain forms get the page back."""
    text = form.get("message", "").strip()
    conversation = form.get("conversation", "")[:64] or secrets.token_hex(8)
    error = detail = None
    exchange: dict[str, Any] | None = None
    if not text:
        error = "form.required"
    elif len(text) > MAX_MESSAGE:
        error = "chat.error.long"
    else:
        try:
            reply = await api.post("/chat", {"conversation_id": conversation, "text": text})
        except SignedOut:
            raise
        except ApiError as exc:
            if exc.status_code not in CHAT_ERRORS:
                raise
            error = CHAT_ERRORS[exc.status_code]
            detail = exc.detail if exc.status_code == 503 else None
        else:
            # The reply names API paths (for API and CLI users); here they are the console's pages.
            answer = API_PATH.sub(r"/\1/", str(reply.get("reply") or ""))
            exchange = {"text": text, "reply": answer, "links": _links(reply)}
            conversation = str(reply.get("conversation_id") or conversation)
    if is_htmx(request):
        return render(
            request,
            "partials/chat_exchange.html",
            exchange=exchange,
            error=error,
            detail=detail,
            text=text,
        )
    return render(
        request,
        "chat.html",
        conversation=conversation,
        exchanges=[exchange] if exchange else [],
        error=error,
        detail=detail,
    )


@router.get("/audit", include_in_schema=False)
async def audit_page(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """The order-audit page: 订单号 → recommendation → 执行."""
    return render(request, "audit.html", result=None, order_no="", error=None)


@router.post("/audit", include_in_schema=False)
async def audit(request: Request, session: SessionDep, api: ApiDep, form: FormDep) -> Response:
    """Audit an order: the model's recommendation, its probability and reasons, and the order's facts."""
    order_no = form.get("order_no", "").strip()
    result: dict[str, Any] | None = None
    error = None
    if not order_no:
        error = "form.required"
    elif not ORDER_NO_RE.match(order_no):
        error = "audit.error.malformed"
    else:
        response = await api.http.post(AUDIT_URL, json={"orderNo": order_no})
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 401:
            raise SignedOut(401, "signed out")
        if response.status_code == 404:
            error = "audit.error.unknown"
        elif response.status_code == 422:
            error = "audit.error.malformed"
        elif response.status_code == 503:
            error = "audit.error.not_ready"
            result = {"message": body.get("detail") or body.get("error")}
        elif response.status_code >= 400:
            raise ApiError(response.status_code, str(body.get("detail") or body.get("error") or "error"))
        else:
            result = approval_view({"context": body})
            result["raw"] = body
    template = "partials/audit_result.html" if is_htmx(request) else "audit.html"
    return render(request, template, result=result, order_no=order_no, error=error)


@router.post("/audit/execute", include_in_schema=False)
async def execute(request: Request, session: SessionDep, api: ApiDep, form: FormDep) -> Response:
    """执行: start ``order-fulfillment`` for the order and follow the run on its page."""
    order_no = form.get("order_no", "").strip()
    if not ORDER_NO_RE.match(order_no):
        return render(request, "audit.html", result=None, order_no=order_no, error="audit.error.malformed")
    try:
        run = await api.post(f"/workflows/{FULFILLMENT}/runs", {"input": {"order_no": order_no}})
    except SignedOut:
        raise
    except ApiError as exc:
        if exc.status_code != 422:
            raise
        # The input did not fit the workflow (an order number it refuses): say so beside the form.
        return render(request, "audit.html", result=None, order_no=order_no, error="audit.error.malformed")
    target = f"/runs/{run['id']}"
    if is_htmx(request):
        # A full page load, not an htmx swap: the run page's own scripts (its live timeline) must run.
        return Response(status_code=200, headers={"HX-Redirect": target})
    return redirect(target)
