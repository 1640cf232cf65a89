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


def metric_columns(versions: list[dict[str, Any]], first: str | None = None) -> list[str]:
    """Numeric metric names present in any version, the promotion metric first, for the side-by-side table."""
    names: set[str] = set()
    for version in versions:
        for key, value in (version.get("metrics") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                names.add(key)
    ordered = sorted(names)
    if first in names:
        ordered.remove(first)
        ordered.insert(0, first)
    return ordered


@router.get("/models", include_in_schema=False)
async def models_page(request: Request, session: SessionDep, api: ApiDep) -> Response:
    """Registered models and which version holds each alias."""
    models = _items(await api.get("/models"))
    return render(request, "models.html", models=models)


async def _model_view(api: Any, name: str) -> dict[str, Any]:
    model = await api.get(f"/models/{quote(name, safe='')}")
    versions = sorted(model.get("versions") or [], key=lambda v: int(v.get("version", 0)), reverse=True)
    history = sorted(model.get("history") or [], key=lambda h: str(h.get("at", "")), reverse=True)
    return {
        "model": model,
        "versions": versions,
        "columns": metric_columns(versions, model.get("metric")),
        "history": history,
    }


@router.get("/models/{name}", include_in_schema=False)
async def model_page(
    request: Request, name: str, session: SessionDep, api: ApiDep, note: str = ""
) -> Response:
    """One model: every version with its metrics side by side, aliases and their history."""
    view = await _model_view(api, name)
    return render(request, "model.html", name=name, note=note[:500], error=None, **view)


@router.post("/models/{name}/versions/{version}/promote", include_in_schema=False)
async def promote(
    request: Request, name: str, version: int, session: AdminDep, api: ApiDep, form: FormDep
) -> Response:
    """Move an alias (``production`` by default) to this version; the registry's gate may refuse."""
    alias = form.get("alias", "production").strip() or "production"
    body = {"alias": alias, "force": form.get("force") == "on", "reason": form.get("reason", "").strip()}
    quoted = quote(name, safe="")
    try:
        result = await api.post(f"/models/{quoted}/versions/{version}/promote", body)
    except SignedOut:
        raise
    except ApiError as exc:
        if exc.status_code not in (409, 422):
            raise
        view = await _model_view(api, name)
        return render(request, "model.html", name=name, note="", error=exc.detail, **view)
    note = f"{result.get('alias', alias)} → v{result.get('version', version)}: {result.get('reason', '')}"
    return redirect(f"/models/{quoted}?note={quote(note)}")


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
