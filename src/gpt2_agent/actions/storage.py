"""Content-addressed file storage and the service that records stored files in the ``files`` table.

Bytes live under ``<root>/blobs/ab/cd/<sha256>``; the name a client gave a file is metadata only
and never becomes part of a path. Uploads stream into a temporary file in the blob folder while
being hashed, so a file of any size is read once and never held in memory, and land under their
digest with one atomic rename: readers see a whole blob or none. The same bytes uploaded twice
share one blob (and get two ``files`` rows).

Usage::

    storage = Storage(settings.storage_path)
    files = FileService(db, storage, settings)
    row = files.save_upload(upload.file, "invoice.pdf", upload.content_type, uploaded_by="alice")
    meta, fh = files.open(row.id)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from gpt2_agent.config import Settings
from gpt2_agent.engine.errors import NotFound
from gpt2_agent.store import Database
from gpt2_agent.store.engine_tables import StoredFile

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
SNIFF_BYTES = 64 * 1024
MAX_NAME_BYTES = 255

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class StorageError(Exception):
    """Base of the errors raised by :class:`Storage` and :class:`FileService`."""


class TooLarge(StorageError):
    """The upload went past the size limit; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"file exceeds the size limit of {limit} bytes")
        self.limit = limit


class BlobNotFound(StorageError, FileNotFoundError):
    """No blob with that digest is in storage."""


class UnknownFile(NotFound):
    """No ``files`` row with that id (the API answers 404)."""

    def __init__(self, file_id: int) -> None:
        super().__init__(f"file {file_id} not found")
        self.file_id = file_id


class Storage:
    """Blobs addressed by their SHA-256 under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()  # a later chdir must not move the storage
        self.blobs = self.root / "blobs"

    def put_stream(self, chunks: Iterable[bytes] | BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        """Store a stream of bytes; return ``(sha256, size)``.

        ``chunks`` is an iterable of byte strings or a binary file object (read in 1 MiB pieces).
        Past ``max_bytes`` the upload stops with :class:`TooLarge` and the temporary file is removed.
        """
        self.blobs.mkdir(parents=True, exist_ok=True)
        # The temporary file sits next to its final place so the rename is atomic (same file system).
        fd, tmp_name = tempfile.mkstemp(dir=self.blobs, prefix=".incoming-")
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _iter_chunks(chunks):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            target = self.path(sha256)
            if target.exists():
                tmp.unlink()  # same bytes are already stored
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)
                _fsync_dir(target.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return sha256, size

    def put_bytes(self, data: bytes, max_bytes: int | None = None) -> tuple[str, int]:
        """Store ``data``; return ``(sha256, size)``."""
        return self.put_stream([data], max_bytes)

    def path(self, sha256: str) -> Path:
        """Where the blob for ``sha256`` lives; only a 64-digit hex digest is accepted."""
        digest = sha256.lower() if isinstance(sha256, str) else ""
        if not _SHA256_HEX.fullmatch(digest):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.blobs / digest[:2] / digest[2:4] / digest

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """Open the blob for reading; the caller closes it."""
        path = self.path(sha256)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} is not in storage") from None


def _iter_chunks(chunks: Iterable[bytes] | BinaryIO) -> Iterator[bytes]:
    read = getattr(chunks, "read", None)
    if callable(read):
        while True:
            block = read(CHUNK_BYTES)
            if not block:
                return
            yield bytes(block)
    else:
        for block in chunks:
            if block:
                yield bytes(block)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- display names -----------------------------------------------------------------------------

# Slash look-alikes count as separators too, so "..／x" cannot read as a path anywhere downstream.
_SEPARATORS = "/\\\uff0f\uff3c\u2215\u2044\u29f8\u29f9\ufe68"
# Characters Windows refuses in names (and '"' would break naive Content-Disposition quoting).
_RESERVED = str.maketrans({c: "_" for c in '<>:"|?*'})
# Unicode categories dropped: controls (NUL, CR, LF...), format characters (bidi overrides and
# isolates U+202A–U+202E / U+2066–U+2069, zero-width U+200B–U+200D, U+2060, U+FEFF), lone
# surrogates (cannot be encoded), and line/paragraph separators.
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
_DRIVE = re.compile(r"^[A-Za-z]:")


def sanitize_display_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A safe display name for a client-given file name, or :class:`ValueError` if nothing is left.

    Keeps only the last path component (``/``, ``\\`` and their full-width and mathematical
    look-alikes all separate), drops control, bidi-override and zero-width characters, replaces
    characters Windows forbids with ``_``, NFC-normalises, and caps the UTF-8 length at
    ``max_bytes`` while keeping a short extension. Percent escapes are left as literal text: the
    name is never decoded or used as a path.
    """
    if not isinstance(name, str):
        raise ValueError(f"file name must be a string, got {type(name).__name__}")
    text = unicodedata.normalize("NFC", name)
    text = "".join(
        " " if ch in "\t\n\r\v\f" else ch
        for ch in text
        if ch in "\t\n\r\v\f" or unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )
    for sep in _SEPARATORS:
        text = text.replace(sep, "/")
    text = text.rsplit("/", 1)[-1]
    text = _DRIVE.sub("", text)
    text = unicodedata.normalize("NFC", text.translate(_RESERVED))
    text = " ".join(text.split())  # collapse and trim whitespace runs
    text = text.rstrip(". ")  # Windows drops trailing dots and spaces; "a.pdf." reads as a.pdf
    if not text.strip("."):
        raise ValueError(f"file name {name[:80]!r} is empty after removing path parts and unsafe characters")
    stem, dot, _ = text.rpartition(".")
    if (stem if dot else text).upper() in _WINDOWS_DEVICES:
        text = "_" + text
    return _cap_utf8(text, max_bytes)


def _cap_utf8(text: str, max_bytes: int) -> str:
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    stem, dot, ext = text.rpartition(".")
    suffix = dot + ext if dot and stem and len((dot + ext).encode("utf-8")) <= 16 else ""
    head = text[: len(text) - len(suffix)] if suffix else text
    budget = max_bytes - len(suffix.encode("utf-8"))
    head = head.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(". ")
    return (head or "_") + suffix


# --- content type sniffing ---------------------------------------------------------------------

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # empty archive
    (b"PK\x07\x08", "application/zip"),  # spanned archive
]
_TEXT_CONTROLS_OK = {"\t", "\n", "\r", "\f"}
OCTET_STREAM = "application/octet-stream"


def sniff_content_type(
    head: bytes, *, name: str = "", declared: str | None = None, complete: bool = False
) -> str:
    """The content type of a file from its first bytes, from a small allowlist.

    Binary types come from magic bytes only. For UTF-8 text, the file's extension or the client's
    declared type may choose between ``text/plain``, ``text/csv`` and ``application/json`` (JSON
    must also look like JSON, and parse when ``complete`` says ``head`` is the whole file); they
    can never make binary bytes pass as text. Anything else is ``application/octet-stream``.
    """
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if not head or not _looks_like_text(head, complete):
        return OCTET_STREAM
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    hint = (declared or "").split(";", 1)[0].strip().lower()
    text = head.decode("utf-8-sig", errors="ignore")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        if complete:
            with contextlib.suppress(ValueError):
                json.loads(text)
                return "application/json"
        elif ext == "json" or hint.endswith("json"):
            return "application/json"
    if ext == "csv" or hint in ("text/csv", "application/csv"):
        return "text/csv"
    return "text/plain"


def _looks_like_text(head: bytes, complete: bool) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sniff window may cut a multi-byte character in half; only that is forgiven.
        if complete or exc.reason != "unexpected end of data" or exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    return not any(unicodedata.category(ch) == "Cc" and ch not in _TEXT_CONTROLS_OK for ch in text)


# --- the files table ---------------------------------------------------------------------------


class FileService:
    """Stores uploads in :class:`Storage` and records them as :class:`StoredFile` rows."""

    def __init__(self, db: Database, storage: Storage, settings: Settings) -> None:
        self.db = db
        self.storage = storage
        self.max_bytes = settings.max_upload_bytes

    def save_upload(
        self,
        stream: Iterable[bytes] | BinaryIO,
        original_name: str,
        content_type: str | None = None,
        uploaded_by: str | None = None,
        task_id: int | None = None,
    ) -> StoredFile:
        """Store an upload and write its ``files`` row.

        ``original_name`` is sanitised (a :class:`ValueError` if nothing is left) before any byte
        is read. ``content_type`` is the client's claim and only a hint between text types; the
        stored type is sniffed from the bytes. Raises :class:`TooLarge` past
        ``settings.max_upload_bytes``.
        """
        display_name = sanitize_display_name(original_name)
        sha256, size = self.storage.put_stream(stream, self.max_bytes)
        sniffed = self._sniff(sha256, size, display_name, content_type)
        row = StoredFile(
            sha256=sha256,
            size=size,
            original_name=display_name,
            content_type=sniffed,
            uploaded_by=uploaded_by,
            task_id=task_id,
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
        logger.info("stored file %s (%s, %d bytes, sha256 %s)", row.id, sniffed, size, sha256)
        return row

    def save_bytes(
        self,
        data: bytes,
        original_name: str,
        content_type: str | None = None,
        uploaded_by: str | None = None,
        task_id: int | None = None,
    ) -> StoredFile:
        """:meth:`save_upload` for bytes already in memory."""
        return self.save_upload([data], original_name, content_type, uploaded_by, task_id)

    def copy(
        self, file_id: int, new_name: str, uploaded_by: str | None = None, task_id: int | None = None
    ) -> StoredFile:
        """A new ``files`` row for an existing file's bytes under another display name (no copy)."""
        display_name = sanitize_display_name(new_name)
        source = self.get(file_id)
        row = StoredFile(
            sha256=source.sha256,
            size=source.size,
            original_name=display_name,
            content_type=source.content_type,
            uploaded_by=uploaded_by,
            task_id=task_id,
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
        return row

    def get(self, file_id: int) -> StoredFile:
        """The ``files`` row, or :class:`UnknownFile`."""
        with self.db.session() as session:
            row = session.get(StoredFile, file_id)
        if row is None:
            raise UnknownFile(file_id)
        return row

    def find_for_task(self, task_id: int, sha256: str, original_name: str) -> StoredFile | None:
        """The file a task already stored with these bytes and name (lets a retried step reuse it)."""
        stmt = (
            select(StoredFile)
            .where(
                StoredFile.task_id == task_id,
                StoredFile.sha256 == sha256,
                StoredFile.original_name == original_name,
            )
            .order_by(StoredFile.id)
            .limit(1)
        )
        with self.db.session() as session:
            return session.scalars(stmt).first()

    def open(self, file_id: int) -> tuple[StoredFile, BinaryIO]:
        """The row and an open binary handle on its bytes (the caller closes it)."""
        row = self.get(file_id)
        return row, self.storage.open(row.sha256)

    def read_bytes(self, file_id: int) -> tuple[StoredFile, bytes]:
        """The row and its whole content (for small files such as e-mail attachments)."""
        row, fh = self.open(file_id)
        with fh:
            return row, fh.read()

    def _sniff(self, sha256: str, size: int, name: str, declared: str | None) -> str:
        with self.storage.open(sha256) as fh:
            head = fh.read(SNIFF_BYTES)
        return sniff_content_type(head, name=name, declared=declared, complete=size <= SNIFF_BYTES)
