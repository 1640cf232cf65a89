"""File upload (multipart, streamed to storage) and download."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Request, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from gpt2_agent.actions.storage import FileService, TooLarge
from gpt2_agent.api.deps import Id, Principal, PrincipalDep
from gpt2_agent.api.schemas import FileOut
from gpt2_agent.store.engine_tables import StoredFile

router = APIRouter(prefix="/files", tags=["files"])


def _service(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


def _visible(service: FileService, file_id: Id, principal: Principal) -> StoredFile:
    row = service.get(file_id)
    if not principal.sees_everything and row.uploaded_by != principal.name:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"file {file_id} not found")
    return row


@router.post("", status_code=201, response_model=FileOut, responses={413: {"description": "too large"}})
async def upload_file(
    request: Request, principal: PrincipalDep, file: Annotated[UploadFile, File(description="The file")]
) -> StoredFile:
    """Upload a file. Stored under its SHA-256; the original name is kept as metadata only."""
    service = _service(request)
    try:
        return await run_in_threadpool(
            service.save_upload, file.file, file.filename or "upload", file.content_type, principal.name
        )
    except TooLarge as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"file name: {exc}") from None


@router.get("/{file_id}", response_model=FileOut)
def read_file(file_id: Id, request: Request, principal: PrincipalDep) -> StoredFile:
    """File metadata."""
    return _visible(_service(request), file_id, principal)


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_file(file_id: Id, request: Request, principal: PrincipalDep) -> StreamingResponse:
    """The file's bytes, always as an attachment."""
    service = _service(request)
    _visible(service, file_id, principal)
    row, handle = service.open(file_id)

    def chunks() -> object:
        with handle:
            while chunk := handle.read(64 * 1024):
                yield chunk

    safe = row.original_name.encode("ascii", "ignore").decode().replace('"', "") or "download"
    return StreamingResponse(
        chunks(),  # type: ignore[arg-type]
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(row.original_name)}"
            ),
            "X-Content-Type-Options": "nosniff",
            "Content-Length": str(row.size),
        },
    )
