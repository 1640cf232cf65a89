"""FileService on SQLite and PostgreSQL: rows, sniffed types, sanitised names, limits."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from gpt2_agent.actions.storage import FileService, TooLarge, UnknownFile
from gpt2_agent.engine.errors import NotFound
from gpt2_agent.store.engine_tables import StoredFile

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64

HOSTILE_NAMES = [
    "../../etc/passwd",
    "..\\..\\win.ini",
    "/etc/passwd",
    "C:\\x",
    "%2e%2e%2f",
    "..／x",
    "file\x00.png",
    "invoice\u202efdp.exe",
    "n" * 10_000,
]


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_save_upload_writes_row_and_blob(files: FileService) -> None:
    row = files.save_upload(io.BytesIO(PNG), "photo.png", "image/png", "alice")
    assert isinstance(row, StoredFile) and row.id is not None
    assert row.sha256 == hashlib.sha256(PNG).hexdigest() and row.size == len(PNG)
    assert (row.original_name, row.content_type, row.uploaded_by) == ("photo.png", "image/png", "alice")
    assert row.created_at.tzinfo is not None
    got = files.get(row.id)
    assert (got.sha256, got.original_name, got.content_type) == (row.sha256, "photo.png", "image/png")
    meta, fh = files.open(row.id)
    assert meta.id == row.id
    with fh:
        assert fh.read() == PNG


def test_client_content_type_is_not_trusted(files: FileService) -> None:
    exe = files.save_upload([b"MZ\x90\x00\x03\x00\x00\x00\x04"], "cat.png", "image/png", "mallory")
    assert exe.content_type == "application/octet-stream"
    html = files.save_upload([b"<script>alert(1)</script>"], "page.html", "text/html", "mallory")
    assert html.content_type == "text/plain"
    csv = files.save_upload([b"a,b\n1,2\n"], "table.csv", None, "bob")
    assert csv.content_type == "text/csv"
    js = files.save_bytes(b'{"ok": true}', "x.json", "application/json")
    assert js.content_type == "application/json"


@pytest.mark.parametrize("raw", HOSTILE_NAMES)
def test_hostile_names_never_escape_the_root(files: FileService, raw: str) -> None:
    root = files.storage.root
    row = files.save_upload([b"payload for " + raw.encode("utf-8", "replace")[:50]], raw, None, "mallory")
    assert "/" not in row.original_name and "\\" not in row.original_name and "\x00" not in row.original_name
    assert "\u202e" not in row.original_name and len(row.original_name) <= 255
    # The name stored in the database round-trips (PostgreSQL refuses NUL: it must be gone first).
    assert files.get(row.id).original_name == row.original_name
    home = root.parent
    for path in _all_files(home):
        if path.name.startswith("gpt2-agent.db"):
            continue  # the SQLite database of the test
        parts = path.resolve().relative_to(root.resolve()).parts  # raises if outside the root
        assert parts == ("blobs", row.sha256[:2], row.sha256[2:4], row.sha256)


@pytest.mark.parametrize("raw", [".", "..", "", "\x00"])
def test_unusable_names_are_refused_before_storing(files: FileService, raw: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        files.save_upload([b"data"], raw, None, "mallory")
    assert _all_files(files.storage.root) == []


def test_too_large_upload_stores_nothing(files: FileService) -> None:
    chunks = (b"x" * 65536 for _ in range(files.max_bytes // 65536 + 2))
    with pytest.raises(TooLarge):
        files.save_upload(chunks, "big.bin", None, "bob")
    assert _all_files(files.storage.root) == []


def test_same_bytes_dedupe_to_one_blob(files: FileService) -> None:
    a = files.save_bytes(b"identical", "a.txt", uploaded_by="alice")
    b = files.save_bytes(b"identical", "b.txt", uploaded_by="bob")
    assert a.id != b.id and a.sha256 == b.sha256
    assert len(_all_files(files.storage.root)) == 1


def test_copy_links_existing_blob_under_new_name(files: FileService) -> None:
    src = files.save_bytes(PNG, "scan.png")
    copy = files.copy(src.id, "../receipt-42.png", uploaded_by="system")
    assert copy.id != src.id and copy.sha256 == src.sha256 and copy.size == src.size
    assert (copy.original_name, copy.content_type) == ("receipt-42.png", "image/png")
    assert len(_all_files(files.storage.root)) == 1


def test_find_for_task(files: FileService, db_task_id: int) -> None:
    row = files.save_bytes(b"receipt", "r.txt", task_id=db_task_id)
    assert files.find_for_task(db_task_id, row.sha256, "r.txt") is not None
    assert files.find_for_task(db_task_id, row.sha256, "other.txt") is None


def test_unknown_file(files: FileService) -> None:
    with pytest.raises(UnknownFile) as info:
        files.get(987654)
    assert isinstance(info.value, NotFound) and info.value.file_id == 987654
