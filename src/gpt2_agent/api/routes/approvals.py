"""The approvals inbox: people decide steps the workflow parked for them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gpt2_agent.api.deps import ApproverDep, EngineDep, Id, PageDep
from gpt2_agent.api.schemas import ApprovalOut, DecisionIn, PageOut
from gpt2_agent.store.engine_tables import Approval

router = APIRouter(prefix="/approvals", tags=["approvals"])


@router.get("", response_model=PageOut[ApprovalOut])
def list_approvals(
    engine: EngineDep,
    _: ApproverDep,
    page: PageDep,
    status_: Annotated[
        Literal["pending", "approved", "rejected", "cancelled"] | None, Query(alias="status")
    ] = "pending",
) -> dict[str, object]:
    """Approvals, oldest first; pending by default."""
    limit, offset = page
    result = engine.list_approvals(status=status_, limit=limit, offset=offset)
    return {"items": result.items, "total": result.total, "limit": limit, "offset": offset}


@router.get("/{approval_id}", response_model=ApprovalOut)
def read_approval(approval_id: Id, engine: EngineDep, _: ApproverDep) -> Approval:
    """One approval with its context."""
    return engine.get_approval(approval_id)


@router.post(
    "/{approval_id}/decision",
    response_model=ApprovalOut,
    responses={409: {"description": "already decided"}, 403: {"description": "four eyes"}},
)
def decide(approval_id: Id, body: DecisionIn, engine: EngineDep, principal: ApproverDep) -> Approval:
    """Approve or reject. The run's submitter cannot decide; a second decision gets 409."""
    return engine.decide(
        approval_id, approve=body.decision == "approve", by=principal.name, comment=body.comment
    )
