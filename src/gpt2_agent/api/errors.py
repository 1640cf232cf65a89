"""Mapping of the engine's errors (and malformed requests) to HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from gpt2_agent.engine.errors import (
    Conflict,
    EngineError,
    Forbidden,
    InvalidInput,
    NotFound,
    UnknownTaskType,
    WorkflowDefinitionError,
)
from gpt2_agent.registry.errors import ChecksumMismatch, PromotionRefused, RegistryError
from gpt2_agent.registry.errors import NotFound as RegistryNotFound

log = logging.getLogger(__name__)

STATUS = {
    UnknownTaskType: 422,
    InvalidInput: 422,
    WorkflowDefinitionError: 422,
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
}


def _status_of(exc: EngineError) -> int:
    for cls, code in STATUS.items():
        if isinstance(exc, cls):
            return code
    return 400


def install(app: FastAPI) -> None:
    @app.exception_handler(EngineError)
    async def engine_error(_: Request, exc: EngineError) -> JSONResponse:
        errors = getattr(exc, "errors", [])
        if isinstance(exc, UnknownTaskType):
            errors = [{"field": "type", "message": "unknown task type", "known": exc.known}]
        return JSONResponse({"detail": str(exc), "errors": errors}, status_code=_status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            errors.append({"field": ".".join(loc), "message": str(err.get("msg", "invalid"))})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(RegistryError)
    async def registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        code = 422
        if isinstance(exc, RegistryNotFound):
            code = 404
        elif isinstance(exc, PromotionRefused):
            code = 409
        elif isinstance(exc, ChecksumMismatch):
            log.error("registry integrity: %s", exc)
            code = 500
        return JSONResponse({"detail": str(exc), "errors": []}, status_code=code)

    @app.exception_handler(OperationalError)
    async def db_unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse(
            {"detail": "database unavailable; retry shortly"}, status_code=503, headers={"Retry-After": "2"}
        )

    @app.exception_handler(DBAPIError)
    async def db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        log.error("database error: %s", exc.orig)
        return JSONResponse({"detail": "the database refused the request"}, status_code=503)
