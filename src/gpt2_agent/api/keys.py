"""API keys: created once, stored only as SHA-256 hashes, each with a role."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from enum import StrEnum

from sqlalchemy import select

from gpt2_agent.engine.errors import Conflict, InvalidInput, NotFound
from gpt2_agent.store import Database
from gpt2_agent.store.base import utcnow
from gpt2_agent.store.engine_tables import ApiKey

KEY_PREFIX = "g2a_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


class Role(StrEnum):
    SUBMITTER = "submitter"  # submit work, read their own
    APPROVER = "approver"  # also decide approvals (not on their own runs) and read everything
    ADMIN = "admin"  # everything, including keys and model promotion


ROLE_RANK = {Role.SUBMITTER: 0, Role.APPROVER: 1, Role.ADMIN: 2}


def hash_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is enough (no slow KDF needed).
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(db: Database, *, name: str, role: str) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never stored or shown again."""
    if not NAME_RE.match(name):
        raise InvalidInput(
            "name must be 1-100 characters of letters, digits, '_', '.', '@' or '-'",
            [{"field": "name", "message": "invalid"}],
        )
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(
            f"role must be one of {', '.join(r.value for r in Role)}",
            [{"field": "role", "message": "invalid"}],
        ) from None
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.write_session() as session:
        clash = session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.active.is_(True))).first()
        if clash is not None and clash.role != role:
            raise Conflict(f"an active key named {name!r} already exists with role {clash.role}")
        row = ApiKey(name=name, role=role, prefix=secret[:12], key_hash=hash_key(secret), active=True)
        session.add(row)
    return row, secret


def authenticate(db: Database, secret: str) -> ApiKey | None:
    """The active key matching ``secret``, or None."""
    digest = hash_key(secret)
    with db.session() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
        if row is None or not row.active or not hmac.compare_digest(row.key_hash, digest):
            return None
        return row


def list_keys(db: Database) -> list[ApiKey]:
    with db.session() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(db: Database, key_id: int) -> ApiKey:
    with db.write_session() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"key {key_id} not found")
        row.active = False
        row.revoked_at = row.revoked_at or utcnow()
        return row
