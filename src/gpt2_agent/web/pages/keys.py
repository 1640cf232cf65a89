"""API keys (admins): create (the secret is shown once), list, revoke."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gpt2_agent.web.api import ApiError, SignedOut
from gpt2_agent.web.core import AdminDep, ApiDep, FormDep, WebRoute, redirect, render

router = APIRouter(route_class=WebRoute)

ROLES = ("submitter", "approver", "admin")
# The API's rule for key names, checked here too so the message can be in the page's language.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


@router.get("/keys", include_in_schema=False)
async def keys_page(request: Request, session: AdminDep, api: ApiDep, revoked: int = 0) -> Response:
    """Every key with its role and state."""
    keys = await api.get("/keys")
    return render(
        request, "keys.html", keys=keys, roles=ROLES, created=None, errors={}, values={}, revoked=revoked
    )


@router.post("/keys", include_in_schema=False)
async def create_key(request: Request, session: AdminDep, api: ApiDep, form: FormDep) -> Response:
    """Create a key and show its secret on this response only (never in a URL, never stored)."""
    name = form.get("name", "").strip()
    role = form.get("role", "")
    errors: dict[str, str] = {}
    if not NAME_RE.match(name):
        errors["name"] = "keys.error.name"
    if role not in ROLES:
        errors["role"] = "keys.error.role"
    created = None
    if not errors:
        try:
            created = await api.post("/keys", {"name": name, "role": role})
        except SignedOut:
            raise
        except ApiError as exc:
            if exc.status_code == 409:
                errors["name"] = "keys.error.clash"
            elif exc.status_code == 422:
                errors["name"] = "keys.error.name"
            else:
                raise
    keys = await api.get("/keys")
    values = {} if created else {"name": name, "role": role}
    return render(
        request, "keys.html", keys=keys, roles=ROLES, created=created, errors=errors, values=values, revoked=0
    )


@router.post("/keys/{key_id}/revoke", include_in_schema=False)
async def revoke_key(
    request: Request, key_id: int, session: AdminDep, api: ApiDep, form: FormDep
) -> Response:
    """Revoke a key; it stops working at once (the API refuses to revoke the key making the call)."""
    try:
        await api.delete(f"/keys/{key_id}")
    except SignedOut:
        raise
    except ApiError as exc:
        if exc.status_code != 409:
            raise
        keys = await api.get("/keys")
        return render(
            request,
            "keys.html",
            keys=keys,
            roles=ROLES,
            created=None,
            errors={"revoke": "keys.error.own"},
            values={},
            revoked=0,
        )
    return redirect(f"/keys?revoked={key_id}")
