"""The model registry over HTTP: models, versions, aliases, promotion and download bundles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse

from gpt2_agent.api.deps import AdminDep, PrincipalDep
from gpt2_agent.api.schemas import ModelDetail, ModelOut, PromoteIn, PromotionOut, VersionOut
from gpt2_agent.registry import Registry

router = APIRouter(prefix="/models", tags=["models"])

ModelName = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Version = Annotated[int, Path(ge=1, le=10**9)]


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def _version_dict(info: Any) -> dict[str, Any]:
    data: dict[str, Any] = info.to_dict()
    data.pop("path", None)  # an internal path is nobody's business over HTTP
    return data


@router.get("", response_model=list[ModelOut])
def list_models(request: Request, _: PrincipalDep) -> list[dict[str, Any]]:
    """Registered models with their aliases."""
    return [m.to_dict() for m in _registry(request).list_models()]


@router.get("/{name}", response_model=ModelDetail)
def read_model(name: ModelName, request: Request, _: PrincipalDep) -> dict[str, Any]:
    """One model: versions with metrics side by side, and the history of every alias."""
    registry = _registry(request)
    data: dict[str, Any] = registry.get_model(name).to_dict()
    data["versions"] = [_version_dict(v) for v in registry.list_versions(name)]
    data["history"] = [h.to_dict() for h in registry.alias_history(name)]
    return data


@router.get("/{name}/versions", response_model=list[VersionOut])
def list_versions(name: ModelName, request: Request, _: PrincipalDep) -> list[dict[str, Any]]:
    """Versions of a model, oldest first."""
    return [_version_dict(v) for v in _registry(request).list_versions(name)]


@router.get("/{name}/versions/{version}", response_model=VersionOut)
def read_version(name: ModelName, version: Version, request: Request, _: PrincipalDep) -> dict[str, Any]:
    """One version with its metrics and lineage."""
    return _version_dict(_registry(request).get_version(name, version))


@router.post("/{name}/versions/{version}/promote", response_model=PromotionOut, responses={409: {}})
def promote(
    name: ModelName, version: Version, body: PromoteIn, request: Request, principal: AdminDep
) -> dict[str, Any]:
    """Move an alias to this version if it beats the holder on the same evaluation set (or ``force``)."""
    result = _registry(request).promote(
        name, version, body.alias, by=principal.name, force=body.force, reason=body.reason
    )
    return result.to_dict()


@router.get(
    "/{name}/versions/{version}/download",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}}},
)
def download(name: ModelName, version: Version, request: Request, _: PrincipalDep) -> FileResponse:
    """A ``.tar.gz`` bundle; unpacked, it loads with ``from_pretrained``."""
    path = _registry(request).bundle(name, version)
    return FileResponse(path, media_type="application/gzip", filename=f"{name}-{version}.tar.gz")
