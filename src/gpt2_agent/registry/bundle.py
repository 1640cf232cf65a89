"""Download bundles: a ``.tar.gz`` of one version folder plus a manifest of SHA-256 digests.

Writing is reproducible (sorted members, zero mtimes and owners) so the same version always gives
the same bytes. Reading trusts nothing: only regular files and folders under one top folder are
accepted (no links, devices, absolute paths or ``..``), sizes are capped, extraction uses
``tarfile``'s ``data`` filter as a second line of defence, and the digests are checked afterwards.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from gpt2_agent.registry.artifact import MAX_FILES, compare_digests
from gpt2_agent.registry.errors import ChecksumMismatch, InvalidArtifact

MANIFEST_FILE = "registry-manifest.json"
MAX_BUNDLE_BYTES = 64 * 1024**3  # uncompressed; far above any GPT-2 size, far below a full disk
COMPRESS_LEVEL = 1  # weights barely compress; level 1 is several times faster than the default 9


def write_bundle(folder: Path, files: list[str], dest: Path, *, top: str, manifest: dict[str, Any]) -> Path:
    """Write ``files`` of ``folder`` under ``top/`` plus the manifest to ``dest`` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".bundle-", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=COMPRESS_LEVEL) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            tar.addfile(_info(f"{top}/", tarfile.DIRTYPE, 0))
            dirs: set[str] = set()
            for rel in sorted(files):
                for parent in reversed(PurePosixPath(rel).parents[:-1]):
                    if str(parent) not in dirs:
                        dirs.add(str(parent))
                        tar.addfile(_info(f"{top}/{parent}/", tarfile.DIRTYPE, 0))
                path = folder / rel
                with path.open("rb") as fh:
                    tar.addfile(_info(f"{top}/{rel}", tarfile.REGTYPE, path.stat().st_size), fh)
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            tar.addfile(_info(f"{top}/{MANIFEST_FILE}", tarfile.REGTYPE, len(data)), io.BytesIO(data))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _info(name: str, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def read_bundle(bundle: Path, into: Path) -> tuple[Path, dict[str, Any]]:
    """Check and extract ``bundle`` into the empty folder ``into``; return (model folder, manifest).

    Raises :class:`InvalidArtifact` for any unsafe member and :class:`ChecksumMismatch` when the
    extracted files differ from the manifest's digests.
    """
    try:
        with tarfile.open(bundle, mode="r:*") as tar:
            members = tar.getmembers()
            top = _check_members(members)
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArtifact(f"{bundle}: not a readable tar archive ({exc})") from None
    folder = into / top
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise InvalidArtifact(f"{bundle}: {MANIFEST_FILE} is missing; not a registry bundle")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArtifact(f"{bundle}: {MANIFEST_FILE} is not valid JSON ({exc})") from None
    manifest_path.unlink()
    expected = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(expected, dict) or not all(isinstance(v, str) for v in expected.values()):
        raise InvalidArtifact(f"{bundle}: {MANIFEST_FILE} has no 'files' digest map")
    problems = compare_digests(expected, folder)
    if problems:
        listing = ", ".join(f"{k} ({v})" for k, v in sorted(problems.items()))
        raise ChecksumMismatch(f"{bundle}: files do not match the manifest: {listing}", problems)
    return folder, manifest


def _check_members(members: list[tarfile.TarInfo]) -> str:
    if not members:
        raise InvalidArtifact("bundle is empty")
    if len(members) > MAX_FILES + 100:
        raise InvalidArtifact(f"bundle has {len(members)} members (limit {MAX_FILES})")
    tops: set[str] = set()
    total = 0
    for member in members:
        name = member.name
        path = PurePosixPath(name)
        if not name or path.is_absolute() or "\\" in name or ".." in path.parts:
            raise InvalidArtifact(f"bundle member {name!r} escapes the extraction folder; refused")
        if member.issym() or member.islnk():
            raise InvalidArtifact(f"bundle member {name!r} is a link (to {member.linkname!r}); refused")
        if not (member.isreg() or member.isdir()):
            raise InvalidArtifact(f"bundle member {name!r} is not a regular file or folder; refused")
        tops.add(path.parts[0])
        total += member.size
    if len(tops) != 1:
        raise InvalidArtifact(f"bundle must hold exactly one top folder, found {sorted(tops)}")
    if total > MAX_BUNDLE_BYTES:
        raise InvalidArtifact(f"bundle unpacks to {total} bytes (limit {MAX_BUNDLE_BYTES})")
    top = tops.pop()
    if top in (".", ""):
        raise InvalidArtifact("bundle top folder has no name")
    return top
