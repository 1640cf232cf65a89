"""Order audit over HTTP, including the seed-compatible ``POST /order/audit``.

The seed route keeps the original one-page form working unchanged: it posts ``{"orderNo": ...}``
and reads ``result`` (``success`` when the audit approves, ``failed`` when it rejects). It accepts
an API key like every other route; with ``GPT2_AGENT_SEED_ROUTE_OPEN=true`` (the demo turns it on)
it also answers callers without a key, because the original form sends none.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gpt2_agent.actions.order_audit import AuditResult, audit_order
from gpt2_agent.api.deps import DbDep, Principal, PrincipalDep, SettingsDep, bearer, current_principal
from gpt2_agent.engine.errors import InvalidInput
from gpt2_agent.serving import ModelNotReady, ServingRuntime
from gpt2_agent.training.data.errors import OrderNotFoundError, SourceReadError

router = APIRouter(tags=["orders"])


class SeedAuditIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    orderNo: str = Field(min_length=1, max_length=64, description="The order number")


class SeedAuditOut(BaseModel):
    result: str = Field(description="'success' when the audit approves, 'failed' when it rejects")
    decision: str | None = None
    probability: float | None = None
    model_version: int | None = None
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    order: dict[str, Any] | None = None
    error: str | None = None


def seed_caller(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    """A key's principal; no key is allowed only in open demo mode."""
    if credentials is None and settings.seed_route_open:
        return None
    return current_principal(db, credentials)


def _runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


def _failed(code: int, error: str) -> JSONResponse:
    return JSONResponse({"result": "failed", "error": error}, status_code=code)


async def _audit(request: Request, order_no: str) -> AuditResult | JSONResponse:
    settings = request.app.state.settings
    try:
        return await run_in_threadpool(
            audit_order, order_no, settings=settings, runtime=_runtime(request), db=request.app.state.db
        )
    except InvalidInput as exc:
        return _failed(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))
    except OrderNotFoundError:
        return _failed(status.HTTP_404_NOT_FOUND, f"order {order_no} not found")
    except ModelNotReady as exc:
        return _failed(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc))
    except SourceReadError as exc:
        return _failed(status.HTTP_503_SERVICE_UNAVAILABLE, f"the warehouse cannot be read: {exc}")


@router.post(
    "/order/audit",
    response_model=SeedAuditOut,
    responses={404: {"model": SeedAuditOut}, 422: {"model": SeedAuditOut}, 503: {"model": SeedAuditOut}},
)
async def seed_order_audit(
    body: SeedAuditIn, request: Request, _: Annotated[Principal | None, Depends(seed_caller)]
) -> Any:
    """Seed-compatible audit: ``{"orderNo"}`` → ``{"result": "success" | "failed", ...}``."""
    result = await _audit(request, body.orderNo.strip())
    if isinstance(result, JSONResponse):
        return result
    return SeedAuditOut(
        result="success" if result.decision == "approve" else "failed",
        decision=result.decision,
        probability=result.probability,
        model_version=result.model_version,
        reasons=[r.model_dump(mode="json") for r in result.reasons],
        order=result.order.model_dump(mode="json"),
    )


@router.post(
    "/api/v1/orders/{order_no}/audit",
    response_model=AuditResult,
    responses={404: {"model": SeedAuditOut}, 422: {"model": SeedAuditOut}, 503: {"model": SeedAuditOut}},
)
async def audit(order_no: str, request: Request, _: PrincipalDep) -> Any:
    """Audit one order now (no workflow): decision, probability, model version and reasons."""
    return await _audit(request, order_no)
