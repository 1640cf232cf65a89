"""Predictions from the production version of a model (micro-batched by the serving runtime)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gpt2_agent.api.deps import PrincipalDep
from gpt2_agent.serving import ModelNotReady, ServingRuntime, UnsupportedTask

router = APIRouter(prefix="/models", tags=["models"])


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[Annotated[str, Field(min_length=1, max_length=8000)]] = Field(min_length=1, max_length=128)


class PredictionOut(BaseModel):
    label: str
    probability: float
    scores: dict[str, float]
    version: int
    model: str


@router.post("/{name}/predict", response_model=list[PredictionOut], responses={503: {}})
async def predict(
    name: Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")],
    body: PredictIn,
    request: Request,
    _: PrincipalDep,
) -> list[dict[str, Any]]:
    """Classify texts with the model's ``production`` version."""
    runtime: ServingRuntime = request.app.state.runtime
    try:
        predictions = await run_in_threadpool(runtime.predict, name, body.texts)
    except ModelNotReady as exc:
        # A model the product serves but nobody trained yet is a temporary state (503, with the
        # command that trains it); any other name simply does not exist.
        if name in request.app.state.served_models:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {name!r} has no production version") from None
    except UnsupportedTask as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return [p.to_dict() for p in predictions]
