"""Sign in with an API key, sign out, and switch language."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gpt2_agent.web import i18n
from gpt2_agent.web.api import ApiError, api_for
from gpt2_agent.web.core import FormDep, WebRoute, optional_session, redirect, render, web_state
from gpt2_agent.web.security import CSRF_COOKIE, SESSION_COOKIE, safe_next

log = logging.getLogger(__name__)
router = APIRouter(route_class=WebRoute)

# Slows down guessing from one browser a little; keys hold 256 random bits, so this is courtesy only.
FAILED_SIGN_IN_DELAY = 0.3


@router.get("/login", include_in_schema=False)
async def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form."""
    if optional_session(request) is not None:
        return redirect(safe_next(next))
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", include_in_schema=False)
async def login(request: Request, form: FormDep) -> Response:
    """Check the key against the API; on success set the session cookie and go where the user was going."""
    key = form.get("api_key", "").strip()
    target = safe_next(form.get("next"))
    if not key:
        return render(request, "login.html", next=target, error="login.error.empty")
    try:
        async with api_for(request.app, key) as api:
            me = await api.get("/me")
    except ApiError as exc:
        if exc.status_code not in (401, 403):
            log.warning("sign-in check failed: HTTP %s %s", exc.status_code, exc.detail)
            return render(request, "login.html", next=target, error="login.error.unavailable")
        await asyncio.sleep(FAILED_SIGN_IN_DELAY)
        # One message whatever was wrong: never hint whether such a key exists.
        return render(request, "login.html", next=target, error="login.error.rejected")
    sessions = web_state(request).sessions
    response = redirect(target)
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        sessions.encode(key=key, name=str(me["name"]), role=str(me["role"]), key_id=me.get("key_id")),
        max_age=sessions.max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    # A fresh CSRF token per session, so a token seen before sign-in is worth nothing after.
    _, csrf_cookie = sessions.new_csrf()
    response.set_cookie(CSRF_COOKIE, csrf_cookie, httponly=True, samesite="strict", secure=secure, path="/")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, form: FormDep) -> Response:
    """Forget the session."""
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/lang", include_in_schema=False)
async def switch_language(request: Request, form: FormDep) -> Response:
    """Remember the chosen language for a year and go back to the page."""
    lang = form.get("lang", "")
    response = redirect(safe_next(form.get("next"), allow_auth_pages=True))
    if lang in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response
