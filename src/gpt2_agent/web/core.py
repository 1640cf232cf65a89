"""What every page shares: templates, the signed-in user, CSRF checks, rendering and error pages."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gpt2_agent.web import i18n
from gpt2_agent.web.api import Api, ApiError, SignedOut, api_for
from gpt2_agent.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    Sessions,
    same_token,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
# Scripts, styles and fonts come only from this server; no inline scripts, no eval.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
ROLE_RANK = {"submitter": 0, "approver": 1, "admin": 2}


@dataclass
class WebState:
    """Set on ``app.state.web`` by :func:`gpt2_agent.web.install`."""

    templates: Jinja2Templates
    sessions: Sessions


class NeedSignIn(Exception):
    """No valid session: go to the sign-in page, then back to the page asked for."""


class NotAllowed(Exception):
    """The user's role does not open this page."""


class BadCsrf(Exception):
    """A form arrived without the right CSRF token."""


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def language(request: Request) -> str:
    """The page language: the user's switch (cookie), else ``Accept-Language``."""
    cached = getattr(request.state, "lang", None)
    if cached:
        return str(cached)
    lang = i18n.pick_language(request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language"))
    request.state.lang = lang
    return lang


def csrf_token(request: Request) -> str:
    """This browser's CSRF token; a new one (sent as a cookie by :func:`render`) when it has none."""
    token = getattr(request.state, "csrf", None)
    if token:
        return str(token)
    sessions = web_state(request).sessions
    token = sessions.csrf_from_cookie(request.cookies.get(CSRF_COOKIE))
    if token is None:
        token, cookie = sessions.new_csrf()
        request.state.new_csrf_cookie = cookie
    request.state.csrf = token
    return token


def optional_session(request: Request) -> Session | None:
    return web_state(request).sessions.decode(request.cookies.get(SESSION_COOKIE))


def current_session(request: Request) -> Session:
    """The signed-in user, or :class:`NeedSignIn`."""
    session = optional_session(request)
    if session is None:
        raise NeedSignIn()
    request.state.session = session
    return session


def require_role(role: str) -> Callable[[Request], Session]:
    """A dependency admitting ``role`` and above."""

    def check(request: Request) -> Session:
        session = current_session(request)
        if not session.at_least(role):
            raise NotAllowed()
        return session

    return check


async def user_api(request: Request) -> AsyncIterator[Api]:
    """The API as the signed-in user."""
    session = current_session(request)
    async with api_for(request.app, session.key) as api:
        yield api


async def check_csrf(request: Request) -> dict[str, str]:
    """Form fields of a POST whose CSRF token matches the cookie (else :class:`BadCsrf`)."""
    expected = web_state(request).sessions.csrf_from_cookie(request.cookies.get(CSRF_COOKIE))
    try:
        form = await request.form()
    except ClientDisconnect:
        raise BadCsrf() from None
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not isinstance(given, str) or not same_token(expected, given):
        raise BadCsrf()
    return {k: v for k, v in form.items() if isinstance(v, str)}


SessionDep = Annotated[Session, Depends(current_session)]
ApproverDep = Annotated[Session, Depends(require_role("approver"))]
AdminDep = Annotated[Session, Depends(require_role("admin"))]
ApiDep = Annotated[Api, Depends(user_api)]
FormDep = Annotated[dict[str, str], Depends(check_csrf)]


def _apply_headers(request: Request, response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    cookie = getattr(request.state, "new_csrf_cookie", None)
    if cookie:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the page context (language, user, CSRF token, helpers)."""
    ctx = page_context(request, **context)
    response = web_state(request).templates.TemplateResponse(request, template, ctx, status_code=status_code)
    return _apply_headers(request, response)  # type: ignore[return-value]


def render_fragment(request: Request, template: str, **context: Any) -> str:
    """``template`` rendered to a string (for Server-Sent Events)."""
    return web_state(request).templates.get_template(template).render(page_context(request, **context))


def page_context(request: Request, **context: Any) -> dict[str, Any]:
    """What every template gets: language, translator, user, CSRF token and formatting helpers."""
    lang = language(request)
    t = i18n.Translator(lang)
    session = getattr(request.state, "session", None) or optional_session(request)
    ctx: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "t": t,
        "user": session,
        "csrf": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "path": request.url.path,
        "here": _here(request),
        "num": lambda v, decimals=None: i18n.format_number(v, lang, decimals=decimals),
        "pct": lambda v, decimals=1: i18n.format_percent(v, lang, decimals=decimals),
        "when": lambda v: i18n.format_datetime(v, lang),
        "iso": lambda v: d.isoformat() if (d := i18n.parse_datetime(v)) else "",
        "state": lambda s: t(f"state.{s}") if s and t.has(f"state.{s}") else (s or "—"),
        "role_name": lambda r: t(f"role.{r}") if r and t.has(f"role.{r}") else (r or "—"),
        "pretty": _pretty_json,
        "can": lambda role: bool(session and session.at_least(role)),
    }
    ctx.update(context)
    return ctx


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a POST, the browser GETs ``url``."""
    return RedirectResponse(url, status_code=303)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def sign_in_redirect(request: Request) -> Response:
    """To the sign-in page, remembering where the user was going."""
    target = "/login?next=" + quote(_here(request), safe="/")
    if is_htmx(request):
        response = Response(status_code=200, headers={"HX-Redirect": target})
    elif request.method == "GET":
        response = RedirectResponse(target, status_code=303)
    else:
        # A POST whose session expired: come back to the page the form was on.
        referer_path = _same_origin_path(request)
        response = RedirectResponse(
            "/login?next=" + quote(referer_path, safe="/") if referer_path else "/login", status_code=303
        )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _same_origin_path(request: Request) -> str | None:
    referer = request.headers.get("referer", "")
    origin = f"{request.url.scheme}://{request.url.netloc}"
    if referer.startswith(origin + "/"):
        return referer[len(origin) :]
    return None


def error_page(
    request: Request, status_code: int, title_key: str, message_key: str, **values: Any
) -> Response:
    """A page in the user's language saying what went wrong (never a traceback)."""
    if is_htmx(request):
        t = i18n.Translator(language(request))
        return _apply_headers(
            request,
            HTMLResponse(
                f'<p class="flash error" role="alert">{_escape(t(message_key, **values))}</p>',
                status_code=status_code,
            ),
        )
    return render(
        request,
        "error.html",
        status_code=status_code,
        title_key=title_key,
        message_key=message_key,
        values=values,
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class WebRoute(APIRoute):
    """Route class for console pages: sign-in redirects, role and CSRF refusals, and no tracebacks."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (NeedSignIn, SignedOut):
                return sign_in_redirect(request)
            except NotAllowed:
                return error_page(request, 403, "error.forbidden.title", "error.forbidden.body")
            except BadCsrf:
                return error_page(request, 403, "error.csrf.title", "error.csrf.body")
            except ApiError as exc:
                if exc.status_code == 404:
                    return error_page(request, 404, "error.not_found.title", "error.not_found.body")
                if exc.status_code == 403:
                    return error_page(request, 403, "error.forbidden.title", "error.forbidden.body")
                log.warning("API answered %s to a page: %s", exc.status_code, exc.detail)
                return error_page(request, 502, "error.api.title", "error.api.body", detail=exc.detail)
            except StarletteHTTPException as exc:
                if exc.status_code == 404:
                    return error_page(request, 404, "error.not_found.title", "error.not_found.body")
                if exc.status_code == 422:
                    return error_page(request, 400, "error.bad_request.title", "error.bad_request.body")
                raise
            except Exception:
                log.exception("page %s failed", request.url.path)
                return error_page(request, 500, "error.server.title", "error.server.body")

        return guarded


WEB_PREFIXES_EXCLUDED = (
    "/api/",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/metrics",
    "/healthz",
    "/readyz",
    "/order/",
)


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not an API client)."""
    if request.url.path.startswith(WEB_PREFIXES_EXCLUDED):
        return False
    return "text/html" in request.headers.get("accept", "")
