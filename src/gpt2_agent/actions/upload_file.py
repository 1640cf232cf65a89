"""The ``upload_file`` action: put a file into storage from a workflow step.

The content comes from the input as text or base64, or is an existing stored file recorded again
under a new display name (a receipt, say); that shares the blob and copies no bytes. Examples::

    {"name": "receipt-42.txt", "text": "Order 42 paid: 19.90 EUR"}
    {"name": "scan.png", "content_base64": "iVBORw0KGgo...", "content_type": "image/png"}
    {"source_file_id": 17, "name": "receipt-42.pdf"}

A retried step finds the row its earlier attempt wrote (same task, bytes and name) and returns it,
so retries do not pile up duplicate rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gpt2_agent.actions.storage import FileService, TooLarge, UnknownFile, sanitize_display_name
from gpt2_agent.engine.errors import PermanentError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType
from gpt2_agent.store.engine_tables import StoredFile

TASK_NAME = "upload_file"


class UploadFileInput(BaseModel):
    """Exactly one of ``text``, ``content_base64`` or ``source_file_id``.

    ``name`` is the display name (sanitised; required unless copying, where it defaults to the
    source's). ``content_type`` is only a hint between text types; the stored type is sniffed.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=4096)
    text: str | None = None
    content_base64: str | None = None
    source_file_id: int | None = Field(default=None, ge=1)
    content_type: str | None = Field(default=None, max_length=200)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return None if value is None else sanitize_display_name(value)

    @field_validator("content_base64")
    @classmethod
    def _valid_base64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("content_base64 is not valid base64") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> UploadFileInput:
        given = [n for n in ("text", "content_base64", "source_file_id") if getattr(self, n) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"give exactly one of text, content_base64, source_file_id (got {got})")
        if self.source_file_id is None and self.name is None:
            raise ValueError("name is required for text or base64 content")
        return self

    def content(self) -> bytes:
        """The bytes to store (for text or base64 input)."""
        if self.text is not None:
            return self.text.encode("utf-8")
        assert self.content_base64 is not None
        return base64.b64decode("".join(self.content_base64.split()), validate=True)


class UploadFileOutput(BaseModel):
    """The stored file."""

    file_id: int
    sha256: str
    size: int
    name: str
    content_type: str


def upload_file_task(files: FileService) -> TaskType[UploadFileInput, UploadFileOutput]:
    """The ``upload_file`` task type bound to the file service."""

    def upload_file(ctx: TaskContext, inp: UploadFileInput) -> UploadFileOutput:
        if inp.source_file_id is not None:
            row = _link(files, ctx, inp.source_file_id, inp.name)
        else:
            row = _store(files, ctx, inp)
        return UploadFileOutput(
            file_id=row.id,
            sha256=row.sha256,
            size=row.size,
            name=row.original_name,
            content_type=row.content_type,
        )

    return TaskType(
        name=TASK_NAME,
        input_model=UploadFileInput,
        output_model=UploadFileOutput,
        fn=upload_file,
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=2.0),
        timeout_seconds=300.0,
        description="Store a file (text, base64, or an existing file under a new name) and return its id.",
    )


def _store(files: FileService, ctx: TaskContext, inp: UploadFileInput) -> StoredFile:
    assert inp.name is not None  # the model validator guarantees it
    data = inp.content()
    if len(data) > files.max_bytes:
        raise PermanentError(f"file exceeds the size limit of {files.max_bytes} bytes")
    existing = files.find_for_task(ctx.task_id, hashlib.sha256(data).hexdigest(), inp.name)
    if existing is not None:
        return existing
    try:
        return files.save_bytes(
            data, inp.name, inp.content_type, uploaded_by=ctx.submitted_by, task_id=ctx.task_id
        )
    except TooLarge as exc:
        raise PermanentError(str(exc)) from exc


def _link(files: FileService, ctx: TaskContext, source_id: int, name: str | None) -> StoredFile:
    try:
        source = files.get(source_id)
    except UnknownFile as exc:
        raise PermanentError(str(exc)) from exc
    display_name = name or source.original_name
    existing = files.find_for_task(ctx.task_id, source.sha256, display_name)
    if existing is not None:
        return existing
    if not files.storage.exists(source.sha256):
        raise PermanentError(f"file {source_id}: the stored bytes are missing")
    return files.copy(source_id, display_name, uploaded_by=ctx.submitted_by, task_id=ctx.task_id)
