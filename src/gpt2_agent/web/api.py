"""The console's only way to data: the HTTP API, called in-process with the signed-in user's key.

Requests go through ``httpx.ASGITransport`` to the same ASGI app, so there is no network hop but
the API's authentication, roles and validation apply exactly as for any other client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp

API = "/api/v1"


class ApiError(Exception):
    """An error answer from the API, with its ``detail`` and per-field ``errors``."""

    def __init__(self, status_code: int, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.errors = errors or []

    def field_errors(self, prefix: str = "") -> dict[str, str]:
        """``{"value": "must be of type integer"}`` from errors whose field starts with ``prefix``."""
        out: dict[str, str] = {}
        for err in self.errors:
            field = str(err.get("field", ""))
            if prefix and not field.startswith(prefix):
                continue
            name = field[len(prefix) :] if prefix else field
            out.setdefault(name, str(err.get("message", "invalid")))
        return out


class SignedOut(ApiError):
    """The key was refused (revoked, or never valid): the user must sign in again."""


class Api:
    """A thin async client. Raises :class:`ApiError` for 4xx/5xx answers."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw response (errors raised as :class:`ApiError`)."""
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        """GET a JSON resource; ``None`` parameters are left out."""
        query = {k: v for k, v in params.items() if v is not None}
        response = await self.request("GET", path, params=query, headers={"Accept": "application/json"})
        return response.json()

    async def post(self, path: str, body: Any = None, *, headers: dict[str, str] | None = None) -> Any:
        """POST JSON and return the JSON answer (``None`` when empty)."""
        response = await self.request("POST", path, json=body if body is not None else {}, headers=headers)
        return response.json() if response.content else None

    async def delete(self, path: str) -> Any:
        response = await self.request("DELETE", path)
        return response.json() if response.content else None

    async def gather(self, *calls: Any) -> list[Any]:
        """Run several calls at once; each result is the value or the :class:`ApiError` it raised."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, SignedOut):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, ApiError):
                raise result
        return list(results)


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        detail = str(body.get("detail", response.reason_phrase))
        errors = body.get("errors") or []
        if not isinstance(errors, list):
            errors = []
    except (ValueError, AttributeError):
        detail, errors = response.reason_phrase or "error", []
    cls = SignedOut if response.status_code == 401 else ApiError
    return cls(response.status_code, detail, errors)


@asynccontextmanager
async def api_for(app: ASGIApp, key: str | None, *, timeout: float = 60.0) -> AsyncIterator[Api]:
    """An :class:`Api` bound to ``app`` that authenticates with ``key``."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://web.internal" + API, headers=headers, timeout=timeout
    ) as http:
        yield Api(http)
