"""Signed session and CSRF cookies for the console.

The session cookie holds the signed-in key, its name and role, and when it was issued, signed with
HMAC-SHA256 under ``settings.web_session_secret`` (or a random secret kept in ``HOME``). It is
HttpOnly and SameSite=Strict, so page scripts cannot read it and other sites cannot send it.
Forms carry a CSRF token that must equal the one in a second signed cookie (double submit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2_agent.config import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "g2a_session"
CSRF_COOKIE = "g2a_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SECRET_FILE = "web_session_secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs small JSON payloads as ``payload.signature`` (both base64url)."""

    def __init__(self, secret: bytes, *, purpose: str) -> None:
        # A per-purpose key, so a CSRF cookie can never be replayed as a session cookie.
        self._key = hmac.new(secret, purpose.encode("utf-8"), hashlib.sha256).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def dumps(self, value: dict[str, Any]) -> str:
        """The signed token for ``value``."""
        payload = _b64(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def loads(self, token: str | None) -> dict[str, Any] | None:
        """The value, or None when the token is missing, malformed or its signature is wrong."""
        if not token or token.count(".") != 1 or len(token) > 4096:
            return None
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            value = json.loads(_unb64(payload))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def load_secret(settings: Settings) -> bytes:
    """The signing secret: from settings, else read or create ``HOME/web_session_secret`` (mode 0600)."""
    if settings.web_session_secret is not None:
        value = settings.web_session_secret.get_secret_value()
        if len(value) < 16:
            raise ValueError("web_session_secret must be at least 16 characters")
        return value.encode("utf-8")
    path = Path(settings.home) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when several server processes start at once, exactly one writes the secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48))
        log.info("generated a web session secret in %s", path)
    for _ in range(50):
        text = path.read_text(encoding="ascii").strip()
        if text:
            return text.encode("ascii")
        time.sleep(0.01)  # another process created the file and is still writing it
    raise RuntimeError(f"the web session secret file {path} is empty")


@dataclass(frozen=True)
class Session:
    """The signed-in user: their key (used for every API call), name and role."""

    key: str
    name: str
    role: str
    issued_at: float
    key_id: int | None = None

    def at_least(self, role: str) -> bool:
        """Whether the role is ``role`` or above (submitter < approver < admin)."""
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]


ROLE_RANK = {"submitter": 0, "approver": 1, "admin": 2}


class Sessions:
    """Reads and writes the session and CSRF cookies."""

    def __init__(self, secret: bytes, max_age_seconds: int) -> None:
        self.max_age = max_age_seconds
        self._session = Signer(secret, purpose="session")
        self._csrf = Signer(secret, purpose="csrf")

    def encode(self, *, key: str, name: str, role: str, key_id: int | None = None) -> str:
        """A new session cookie value."""
        return self._session.dumps({"k": key, "n": name, "r": role, "i": key_id, "t": int(time.time())})

    def decode(self, token: str | None) -> Session | None:
        """The session, or None when absent, tampered with or expired."""
        value = self._session.loads(token)
        if value is None:
            return None
        try:
            key_id = value.get("i")
            session = Session(
                key=str(value["k"]),
                name=str(value["n"]),
                role=str(value["r"]),
                issued_at=float(value["t"]),
                key_id=int(key_id) if key_id is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None
        if not 0 <= time.time() - session.issued_at <= self.max_age:
            return None
        return session

    def new_csrf(self) -> tuple[str, str]:
        """A fresh CSRF token and the cookie value that vouches for it."""
        token = secrets.token_urlsafe(24)
        return token, self._csrf.dumps({"c": token})

    def csrf_from_cookie(self, cookie: str | None) -> str | None:
        """The CSRF token the cookie vouches for."""
        value = self._csrf.loads(cookie)
        token = value.get("c") if value else None
        return token if isinstance(token, str) and token else None


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison that refuses empty values."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def safe_next(target: str | None, default: str = "/", *, allow_auth_pages: bool = False) -> str:
    """A same-site path to go to after a form (refuses absolute and protocol-relative URLs)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(ch) < 32 for ch in target) or len(target) > 2000:
        return default
    if not allow_auth_pages and target.startswith(("/login", "/logout")):
        return default
    return target
