"""Who am I: the calling key's name and role (the web console shows pages by role)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from gpt2_agent.api.deps import PrincipalDep

router = APIRouter(tags=["keys"])


class MeOut(BaseModel):
    name: str
    role: str
    key_id: int


@router.get("/me", response_model=MeOut)
def read_me(principal: PrincipalDep) -> MeOut:
    """The authenticated key's name, role and id."""
    return MeOut(name=principal.name, role=principal.role.value, key_id=principal.key_id)
