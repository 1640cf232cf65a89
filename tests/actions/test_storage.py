"""Content-addressed storage, display-name sanitising and content sniffing (no database)."""

from __future__ import annotations

import hashlib
import io
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2_agent.actions.storage import (
    BlobNotFound,
    Storage,
    TooLarge,
    sanitize_display_name,
    sniff_content_type,
)


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_stream_hashes_and_places_blob(storage: Storage) -> None:
    data = b"hello world\n" * 1000
    sha, size = storage.put_stream(iter([data[:5000], data[5000:]]))
    assert sha == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    assert storage.path(sha) == storage.root / "blobs" / sha[:2] / sha[2:4] / sha
    assert storage.exists(sha)
    with storage.open(sha) as fh:
        assert fh.read() == data


def test_put_stream_reads_file_objects_in_chunks(storage: Storage) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several 1 MiB reads
    sha, size = storage.put_stream(io.BytesIO(data), max_bytes=len(data))
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_put_stream_is_streaming(storage: Storage) -> None:
    """Chunks are consumed one at a time: the generator is never materialised."""
    produced: list[int] = []

    def gen() -> Iterator[bytes]:
        for i in range(50):
            produced.append(i)
            yield bytes([i]) * 4096

    sha, size = storage.put_stream(gen())
    assert size == 50 * 4096 and len(produced) == 50
    assert storage.exists(sha)


def test_size_limit_aborts_and_removes_temp_file(storage: Storage) -> None:
    with pytest.raises(TooLarge) as info:
        storage.put_stream(iter([b"a" * 600, b"b" * 600]), max_bytes=1000)
    assert info.value.limit == 1000
    assert _files_under(storage.root) == []  # neither a blob nor a left-over temp file


def test_exactly_at_limit_is_accepted(storage: Storage) -> None:
    _, size = storage.put_stream([b"x" * 1000], max_bytes=1000)
    assert size == 1000


def test_failing_stream_leaves_nothing(storage: Storage) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        storage.put_stream(broken())
    assert _files_under(storage.root) == []


def test_same_bytes_share_one_blob(storage: Storage) -> None:
    a = storage.put_bytes(b"same content")
    b = storage.put_stream(io.BytesIO(b"same content"))
    assert a == b
    assert len(_files_under(storage.root)) == 1


def test_empty_file(storage: Storage) -> None:
    sha, size = storage.put_bytes(b"")
    assert size == 0 and sha == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "a" * 63,
        "A" * 65,
        "g" * 64,
        "../" + "a" * 61,
        "/" + "a" * 63,
        "",
        "a" * 62 + "\x00a",
    ],
)
def test_path_refuses_anything_but_a_digest(storage: Storage, bad: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        storage.path(bad)


def test_path_accepts_upper_case_digest(storage: Storage) -> None:
    sha, _ = storage.put_bytes(b"x")
    assert storage.exists(sha.upper())


def test_open_missing_blob(storage: Storage) -> None:
    with pytest.raises(BlobNotFound):
        storage.open("0" * 64)
    assert not storage.exists("0" * 64)


TRAVERSAL_NAMES = {
    "../../etc/passwd": "passwd",
    "..\\..\\win.ini": "win.ini",
    "/etc/passwd": "passwd",
    "C:\\x": "x",
    "C:x.txt": "x.txt",
    "%2e%2e%2f": "%2e%2e%2f",  # never decoded: literal text, not a path
    "..／x": "x",
    "..＼x": "x",
    "a∕b": "b",
    "file\x00.png": "file.png",
    "invoice\u202efdp.exe": "invoicefdp.exe",
    "in\u2066voice\u2069.pdf": "invoice.pdf",
    "zero\u200bwidth\ufeff.txt": "zerowidth.txt",
    "line\r\nbreak.txt": "line break.txt",
    "  spaced  .txt  ": "spaced .txt",
    "report.pdf.": "report.pdf",
    'a<b>:"c"|?*.txt': "a_b___c____.txt",
    "CON": "_CON",
    "nul.txt": "_nul.txt",
    ".bashrc": ".bashrc",
    "Cafe\u0301.txt": "Café.txt",  # NFC
    "报告.pdf": "报告.pdf",
}


@pytest.mark.parametrize(("raw", "expected"), list(TRAVERSAL_NAMES.items()))
def test_sanitize_display_name(raw: str, expected: str) -> None:
    assert sanitize_display_name(raw) == expected


@pytest.mark.parametrize(
    "raw", [".", "..", "...", "", "   ", "/", "../", "..\\..\\", "\x00", "\u202e", "C:", "a/.."]
)
def test_sanitize_refuses_names_that_end_up_empty(raw: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        sanitize_display_name(raw)


def test_long_names_are_capped_keeping_the_extension() -> None:
    name = sanitize_display_name("a" * 10_000 + ".pdf")
    assert len(name.encode()) == 255 and name.endswith(".pdf")
    cjk = sanitize_display_name("报" * 10_000)
    assert len(cjk.encode()) <= 255 and set(cjk) == {"报"}  # never cut inside a character


_SEPARATOR_CHARS = set("/\\／＼∕⁄⧸⧹﹨")


def _assert_safe(name: str) -> None:
    assert name and name.strip(".") and len(name.encode()) <= 255
    assert not (_SEPARATOR_CHARS & set(name))
    assert all(unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Zl", "Zp"} for c in name)
    assert unicodedata.is_normalized("NFC", name)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_sanitize_never_returns_anything_unsafe(raw: str) -> None:
    try:
        name = sanitize_display_name(raw)
    except ValueError:
        return
    _assert_safe(name)
    assert sanitize_display_name(name) == name  # idempotent


@pytest.mark.parametrize(
    ("head", "name", "declared", "complete", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "x.txt", "text/plain", True, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "x.png", None, True, "image/jpeg"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "x", None, True, "application/pdf"),
        (b"PK\x03\x04\x14\x00", "x.docx", None, True, "application/zip"),
        (b"plain words\n", "notes", None, True, "text/plain"),
        (b"a,b\n1,2\n", "data.csv", None, True, "text/csv"),
        (b"a,b\n1,2\n", "data", "text/csv", True, "text/csv"),
        (b'{"a": [1, 2]}', "x", None, True, "application/json"),
        (b'{"a": [1, 2', "x.json", None, True, "text/plain"),  # does not parse
        (b'{"a": [1, 2', "x.json", None, False, "application/json"),  # truncated window
        (b"<html><script>alert(1)</script>", "x.html", "text/html", True, "text/plain"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "x.png", "image/png", True, "application/octet-stream"),
        (b"\x00\x01\x02", "x.txt", "text/plain", True, "application/octet-stream"),
        (b"", "x.txt", "text/plain", True, "application/octet-stream"),
        ("caf\u00e9".encode()[:-1], "x.txt", None, False, "text/plain"),  # window cut a character
        ("caf\u00e9".encode()[:-1], "x.txt", None, True, "application/octet-stream"),
    ],
)
def test_sniff_content_type(
    head: bytes, name: str, declared: str | None, complete: bool, expected: str
) -> None:
    assert sniff_content_type(head, name=name, declared=declared, complete=complete) == expected
