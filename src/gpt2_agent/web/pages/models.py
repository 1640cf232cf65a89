"""Models: versions side by side with their metrics, aliases and their history, promote, download.

Built against the registry routes of ARCHITECTURE.md; while the server lacks them the page says so.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gpt2_agent.web.api import ApiError, SignedOut
from gpt2_agent.web.core import AdminDep, ApiDep, FormDep, SessionDep, WebRoute, redirect, render

router = APIRouter(route_class=WebRoute)


def _items(result: Any) -> list[dict[str, Any]]:
    """Lists come bare or paginated (``{"items": [...]}``)."""
    if isinstance(result, dict):
        return list(result.get("items", []))
    return list(result or [])


def metric_columns(versions: list[dict[str, Any]]) -> list[str]:
    """Numeric metric names present in any version (sorted), for the side-by-side table."""
    names: set[str] = set()
    for version in versions:
        for key, value in (version.get("metrics") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                names.add(key)
    return sorted(names)


@router.get("/models", include_in_schema=False)
async def models_page(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """Registered models and which version holds each alias."""
    try:
        models = _items(await api.get("/models"))
    except ApiError as exc:
        if exc.route_missing:
            return render(request, "models.html", unavailable=True, models=[])
        raise
    return render(request, "models.html", unavailable=False, models=models)


@router.get("/models/{name}", include_in_schema=False)
async def model_page(
    request: Request, name: str, session: SessionDep, api: ApiDep, promoted: str = ""
) -> Response:
    """One model: every version with its metrics side by side, aliases and their history."""
    quoted = quote(name, safe="")
    try:
        versions = _items(await api.get(f"/models/{quoted}/versions"))
    except ApiError as exc:
        if exc.route_missing:
            return render(
                request, "model.html", unavailable=True, name=name, versions=[], columns=[], history=[]
            )
        raise
    history: list[dict[str, Any]] = []
    try:
        history = _items(await api.get(f"/models/{quoted}/aliases/history"))
    except SignedOut:
        raise
    except ApiError:
        history = []  # optional route; the page works without it
    versions.sort(key=lambda v: int(v.get("version", 0)), reverse=True)
    return render(
        request,
        "model.html",
        unavailable=False,
        name=name,
        versions=versions,
        columns=metric_columns(versions),
        history=history,
        promoted=promoted,
        error=None,
    )


@router.post("/models/{name}/versions/{version}/promote", include_in_schema=False)
async def promote(
    request: Request, name: str, version: int, session: AdminDep, api: ApiDep, form: FormDep
) -> Response:
    """Move an alias (``production`` by default) to this version; the registry's gate may refuse."""
    alias = form.get("alias", "production").strip() or "production"
    body = {"alias": alias, "force": form.get("force") == "on", "reason": form.get("reason", "").strip()}
    quoted = quote(name, safe="")
    try:
        await api.post(f"/models/{quoted}/versions/{version}/promote", body)
    except SignedOut:
        raise
    except ApiError as exc:
        if exc.status_code not in (409, 422):
            raise
        versions = _items(await api.get(f"/models/{quoted}/versions"))
        versions.sort(key=lambda v: int(v.get("version", 0)), reverse=True)
        return render(
            request,
            "model.html",
            unavailable=False,
            name=name,
            versions=versions,
            columns=metric_columns(versions),
            history=[],
            promoted="",
            error=exc.detail,
        )
    return redirect(f"/models/{quoted}?promoted={version}")


@router.get("/models/{name}/versions/{version}/download", include_in_schema=False)
async def download(request: Request, name: str, version: int, session: SessionDep, api: ApiDep) -> Response:
    """The version's bundle, fetched with the user's rights."""
    response = await api.request("GET", f"/models/{quote(name, safe='')}/versions/{version}/download")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    disposition = response.headers.get("content-disposition")
    headers["Content-Disposition"] = disposition or f'attachment; filename="{_safe(name)}-v{version}.tar.gz"'
    return Response(response.content, media_type="application/octet-stream", headers=headers)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "model"
