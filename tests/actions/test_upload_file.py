"""upload_file on SQLite and PostgreSQL: text, base64, linking an existing file, retries."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gpt2_agent.actions.storage import FileService
from gpt2_agent.actions.upload_file import UploadFileInput, UploadFileOutput, upload_file_task
from gpt2_agent.engine.errors import InvalidInput, PermanentError
from gpt2_agent.engine.handlers import TaskContext, TaskType

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x02" * 64


@pytest.fixture
def task(files: FileService) -> TaskType[UploadFileInput, UploadFileOutput]:
    return upload_file_task(files)


def _ctx(task_id: int, attempt: int = 1) -> TaskContext:
    return TaskContext(
        task_id=task_id, attempt=attempt, idempotency_key=f"task-{task_id}", submitted_by="alice"
    )


def test_text_upload(
    task: TaskType[UploadFileInput, UploadFileOutput], files: FileService, db_task_id: int
) -> None:
    out = task.fn(
        _ctx(db_task_id), task.parse_input({"name": "receipt-42.txt", "text": "Order 42 paid: 19.90 EUR"})
    )
    data = b"Order 42 paid: 19.90 EUR"
    assert (out.sha256, out.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (out.name, out.content_type) == ("receipt-42.txt", "text/plain")
    row = files.get(out.file_id)
    assert (row.task_id, row.uploaded_by) == (db_task_id, "alice")
    with files.storage.open(out.sha256) as fh:
        assert fh.read() == data


def test_base64_upload_sniffs_type(
    task: TaskType[UploadFileInput, UploadFileOutput], db_task_id: int
) -> None:
    encoded = base64.b64encode(PNG).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))  # MIME-style lines are fine
    out = task.fn(
        _ctx(db_task_id),
        task.parse_input(
            {"name": "../scan.exe.png", "content_base64": wrapped, "content_type": "application/x-msdownload"}
        ),
    )
    assert (out.name, out.content_type, out.size) == ("scan.exe.png", "image/png", len(PNG))


def test_link_existing_file_under_new_name(
    task: TaskType[UploadFileInput, UploadFileOutput], files: FileService, db_task_id: int
) -> None:
    source = files.save_bytes(PNG, "scan.png", uploaded_by="bob")
    out = task.fn(_ctx(db_task_id), task.parse_input({"source_file_id": source.id, "name": "receipt-42.png"}))
    assert out.file_id != source.id and out.sha256 == source.sha256
    assert (out.name, out.content_type) == ("receipt-42.png", "image/png")
    default_name = task.fn(_ctx(db_task_id), task.parse_input({"source_file_id": source.id}))
    assert default_name.name == "scan.png"
    assert len([p for p in files.storage.root.rglob("*") if p.is_file()]) == 1


def test_retry_reuses_the_row_of_the_earlier_attempt(
    task: TaskType[UploadFileInput, UploadFileOutput], files: FileService, db_task_id: int
) -> None:
    data = task.parse_input({"name": "r.txt", "text": "once"})
    first = task.fn(_ctx(db_task_id, attempt=1), data)
    second = task.fn(_ctx(db_task_id, attempt=2), data)
    assert first.file_id == second.file_id
    source = files.save_bytes(PNG, "scan.png")
    link = task.parse_input({"source_file_id": source.id, "name": "copy.png"})
    assert task.fn(_ctx(db_task_id, 1), link).file_id == task.fn(_ctx(db_task_id, 2), link).file_id


def test_unknown_source_is_permanent(
    task: TaskType[UploadFileInput, UploadFileOutput], db_task_id: int
) -> None:
    with pytest.raises(PermanentError, match="not found"):
        task.fn(_ctx(db_task_id), task.parse_input({"source_file_id": 999999, "name": "x.png"}))


def test_too_large_is_permanent(
    task: TaskType[UploadFileInput, UploadFileOutput], files: FileService, db_task_id: int
) -> None:
    with pytest.raises(PermanentError, match="size limit"):
        task.fn(_ctx(db_task_id), task.parse_input({"name": "big.txt", "text": "x" * (files.max_bytes + 1)}))
    assert [p for p in files.storage.root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a.txt"}, "exactly one"),
        ({"name": "a.txt", "text": "x", "content_base64": "eA=="}, "exactly one"),
        ({"text": "x"}, "name is required"),
        ({"name": "..", "text": "x"}, "empty"),
        ({"name": "\u202e\u200b", "text": "x"}, "empty"),
        ({"name": "a.bin", "content_base64": "not base64!"}, "base64"),
        ({"name": "a.txt", "text": "x", "path": "/etc/passwd"}, "path"),
    ],
)
def test_invalid_input(
    task: TaskType[UploadFileInput, UploadFileOutput], data: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        task.parse_input(data)
