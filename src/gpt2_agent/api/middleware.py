"""ASGI middleware: request-size limits (413 before the body is read) and NUL-byte refusal."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies over the limit: by ``Content-Length`` up front, or while streaming.

    ``upload_prefixes`` get the (larger) upload limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, upload_max_bytes: int, upload_prefixes: tuple[str, ...]
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.upload_prefixes = upload_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        raw_query: bytes = scope.get("query_string", b"")
        if b"%00" in raw_query or b"\x00" in raw_query or "\x00" in path:
            await _reply(send, 422, "NUL characters are not allowed in the URL")
            return
        limit = self.upload_max_bytes if path.startswith(self.upload_prefixes) else self.max_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _reply(send, 400, "invalid Content-Length")
                return
            if declared > limit:
                await _reply(send, 413, f"request body too large: {declared} bytes, limit {limit}")
                return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except TooLarge:
            if not response_started:
                await _reply(send, 413, f"request body too large: limit {limit} bytes")


class JsonNulMiddleware:
    """Refuse JSON bodies holding NUL characters (PostgreSQL text cannot store them)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if b"json" not in headers.get(b"content-type", b""):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if b"\\u0000" in body or b"\x00" in body:
            await _reply(send, 422, "NUL characters (\\u0000) are not allowed in text fields")
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, detail: str) -> None:
    payload: dict[str, Any] = {"detail": detail, "errors": []}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
