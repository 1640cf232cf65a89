"""Stripe-style idempotency keys.

The same key and the same body return the original resource; the same key with another body
is a :class:`Conflict`. Keys are scoped per caller and endpoint, and expire after a TTL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gpt2_agent.engine.errors import Conflict, InvalidInput
from gpt2_agent.store.base import utcnow
from gpt2_agent.store.engine_tables import IdempotencyKey

MAX_KEY_LENGTH = 255


def request_hash(body: Any) -> str:
    """Canonical hash of a request body (key order does not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_key(key: str) -> str:
    """Validate a client-supplied key."""
    if not key or len(key) > MAX_KEY_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInput(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
            [{"field": "Idempotency-Key", "message": "invalid"}],
        )
    return key


def lookup(session: Session, scope: str, key: str, body_hash: str, resource_type: str) -> int | None:
    """The resource id a live key points to, ``None`` if unused; raises on a body mismatch."""
    row = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    ).first()
    if row is None:
        return None
    if row.expires_at <= utcnow():
        session.delete(row)
        session.flush()
        return None
    if row.request_hash != body_hash or row.resource_type != resource_type:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used with a different request body "
            f"(for {row.resource_type} {row.resource_id}); use a new key for a new request"
        )
    return row.resource_id


def remember(
    session: Session, scope: str, key: str, body_hash: str, resource_type: str, resource_id: int, ttl: float
) -> None:
    """Store the key in the caller's transaction (the unique constraint guards races)."""
    now = utcnow()
    session.add(
        IdempotencyKey(
            scope=scope,
            key=key,
            request_hash=body_hash,
            resource_type=resource_type,
            resource_id=resource_id,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
    )


def purge_expired(session: Session) -> int:
    """Delete expired keys; returns how many."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
