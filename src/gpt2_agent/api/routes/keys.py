"""API keys (admin only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from gpt2_agent.api import keys
from gpt2_agent.api.deps import AdminDep, DbDep, Id
from gpt2_agent.api.schemas import KeyCreate, KeyCreated, KeyOut
from gpt2_agent.store.engine_tables import ApiKey

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post("", status_code=201, response_model=KeyCreated)
def create_key(body: KeyCreate, db: DbDep, _: AdminDep) -> dict[str, Any]:
    """Create a key. The secret is in this response only."""
    row, secret = keys.create_key(db, name=body.name, role=body.role)
    return {**KeyOut.model_validate(row).model_dump(), "key": secret}


@router.get("", response_model=list[KeyOut])
def list_keys(db: DbDep, _: AdminDep) -> list[ApiKey]:
    """All keys (never their secrets or hashes)."""
    return keys.list_keys(db)


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(key_id: Id, db: DbDep, principal: AdminDep) -> ApiKey:
    """Revoke a key; it stops working at once. The key making the call cannot revoke itself."""
    if key_id == principal.key_id:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot revoke the key you are using")
    return keys.revoke_key(db, key_id)
