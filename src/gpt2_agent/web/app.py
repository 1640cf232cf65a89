"""``install(app)``: mount the console's pages and static files on the API's FastAPI app."""

from __future__ import annotations

import inspect
import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpt2_agent.config import Settings
from gpt2_agent.web.core import HERE, WebState, error_page, wants_html
from gpt2_agent.web.pages import approvals, assistant, auth, dashboard, keys, models, training, work
from gpt2_agent.web.security import Sessions, load_secret

log = logging.getLogger(__name__)

ROUTERS = (auth, dashboard, approvals, work, keys, models, training, assistant)


def install(app: FastAPI) -> None:
    """Mount the pages under ``/`` and static assets under ``/static`` (idempotent per app)."""
    if getattr(app.state, "web", None) is not None:
        return
    settings: Settings = app.state.settings
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.trim_blocks = True
    templates.env.lstrip_blocks = True
    app.state.web = WebState(
        templates=templates,
        sessions=Sessions(load_secret(settings), settings.web_session_max_age_seconds),
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in ROUTERS:
        app.include_router(module.router)
    _html_not_found(app)


def _html_not_found(app: FastAPI) -> None:
    """Browsers asking for a page that does not exist get one in their language; API clients keep JSON."""
    previous = app.exception_handlers.get(StarletteHTTPException)

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405) and wants_html(request):
            return error_page(request, 404, "error.not_found.title", "error.not_found.body")
        if previous is not None:
            result = previous(request, exc)
            return await result if inspect.isawaitable(result) else result
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, handler)
