"""Validation and hashing of model folders before they enter the registry.

A model folder is what ``transformers``' ``save_pretrained`` writes (``config.json`` +
``*.safetensors``) plus tokenizer files, ``labels.json``, ``metrics.json`` and ``lineage.json``.
Loading a pickle runs code, so anything that could be one is refused: only an allow-list of
file types may enter, every file is sniffed for pickle/zip magic bytes, and every
``.safetensors`` header is parsed and checked against the file without trusting it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2_agent.registry.errors import InvalidArtifact

# File types a model folder may contain. Weights are safetensors only; the rest is text/JSON
# (tokenizer.json, vocab.json, merges.txt, chat templates) or a sentencepiece protobuf.
ALLOWED_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".md", ".model", ".jinja", ".yaml", ".yml"})
# Named explicitly so the refusal can say why; all of these are (or may wrap) pickles.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz"})

# The safetensors library itself refuses headers above 100 MB; a GPT-2 header is a few KB.
MAX_HEADER_BYTES = 100_000_000
MAX_FILES = 10_000

# Bits per element of every dtype the safetensors format defines.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip

CONFIG_FILE = "config.json"
# Files the registry writes itself into every version folder.
METRICS_FILE = "metrics.json"
LINEAGE_FILE = "lineage.json"
LABELS_FILE = "labels.json"
# Held-out texts (and labels) a classifier version carries, so whoever serves it can check a
# cheaper precision (bf16, int8) against fp32 on data the model never trained on.
EVAL_SAMPLE_FILE = "eval_sample.json"


@dataclass(frozen=True)
class ArtifactSummary:
    """What validation learned about a folder."""

    files: list[str]  # relative POSIX paths, sorted
    weights: list[str]  # the .safetensors files among them
    config: dict[str, Any]
    size_bytes: int


def validate_artifact(folder: Path) -> ArtifactSummary:
    """Check that ``folder`` is a safe, loadable model folder; raise :class:`InvalidArtifact` if not."""
    if not folder.is_dir():
        raise InvalidArtifact(f"not a folder: {folder}")
    files = list_files(folder)
    if CONFIG_FILE not in files:
        raise InvalidArtifact(f"{folder}: config.json is missing (expected a save_pretrained() folder)")
    size = 0
    weights: list[str] = []
    for rel in files:
        path = folder / rel
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES or "pickle" in path.name.lower():
            raise InvalidArtifact(
                f"{rel}: pickle-based files are refused; save weights with safetensors "
                "(save_pretrained(..., safe_serialization=True))"
            )
        if suffix not in ALLOWED_SUFFIXES:
            raise InvalidArtifact(
                f"{rel}: file type {suffix or '(none)'!r} is not allowed in a model folder "
                f"(allowed: {', '.join(sorted(ALLOWED_SUFFIXES))})"
            )
        _refuse_pickle_magic(path, rel)
        if suffix == ".safetensors":
            check_safetensors(path, rel)
            weights.append(rel)
        size += path.stat().st_size
    if not weights:
        raise InvalidArtifact(f"{folder}: no .safetensors weights found")
    config = read_json_object(folder / CONFIG_FILE, CONFIG_FILE)
    for name in (METRICS_FILE, LINEAGE_FILE, LABELS_FILE):
        if name in files:
            read_json(folder / name, name)  # a broken JSON file now beats a broken load later
    return ArtifactSummary(files=files, weights=weights, config=config, size_bytes=size)


def list_files(folder: Path) -> list[str]:
    """Relative POSIX paths of every regular file under ``folder``; refuses links and special files."""
    out: list[str] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        base = Path(root)
        for d in dirs:
            if (base / d).is_symlink():
                raise InvalidArtifact(
                    f"{(base / d).relative_to(folder).as_posix()}: symbolic links are refused"
                )
        for name in names:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise InvalidArtifact(f"{rel}: symbolic links are refused")
            if not path.is_file():
                raise InvalidArtifact(f"{rel}: not a regular file")
            out.append(rel)
            if len(out) > MAX_FILES:
                raise InvalidArtifact(f"{folder}: more than {MAX_FILES} files")
    return sorted(out)


def _refuse_pickle_magic(path: Path, rel: str) -> None:
    with path.open("rb") as fh:
        head = fh.read(4)
    # Pickle protocol 2+ starts with PROTO (0x80) and the protocol number; torch.save writes a zip.
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise InvalidArtifact(f"{rel}: content is a pickle; pickles are refused")
    if head == b"PK\x03\x04":
        raise InvalidArtifact(f"{rel}: content is a zip archive (torch.save format?); refused")


def check_safetensors(path: Path, rel: str | None = None) -> dict[str, Any]:
    """Parse a safetensors header without trusting it and return it.

    Checks: the 8-byte length fits the file and :data:`MAX_HEADER_BYTES`; the header is a JSON
    object; every tensor has a known dtype, a non-negative shape and ``data_offsets`` that lie in
    the data buffer, match ``shape × dtype`` and tile the buffer without gaps or overlaps.
    """
    rel = rel or path.name
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise InvalidArtifact(f"{rel}: too short to be a safetensors file ({size} bytes)")
        if prefix[0] == 0x80 and 2 <= prefix[1] <= 5:
            raise InvalidArtifact(f"{rel}: content is a pickle, not safetensors; refused")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES:
            raise InvalidArtifact(
                f"{rel}: safetensors header of {header_len} bytes exceeds the limit of {MAX_HEADER_BYTES}"
            )
        if 8 + header_len > size:
            raise InvalidArtifact(
                f"{rel}: safetensors header length {header_len} is larger than the file ({size} bytes)"
            )
        raw = fh.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArtifact(f"{rel}: safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InvalidArtifact(f"{rel}: safetensors header is not a JSON object")
    buffer_len = size - 8 - header_len
    spans: list[tuple[int, int, str]] = []
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in info.items()
            ):
                raise InvalidArtifact(f"{rel}: __metadata__ must map strings to strings")
            continue
        spans.append((*_tensor_span(rel, key, info, buffer_len), key))
    spans.sort()
    cursor = 0
    for begin, end, key in spans:
        if begin != cursor:
            raise InvalidArtifact(
                f"{rel}: tensor {key!r} starts at {begin}, expected {cursor} (gap or overlap)"
            )
        cursor = end
    if cursor != buffer_len:
        raise InvalidArtifact(f"{rel}: tensors cover {cursor} bytes but the data buffer has {buffer_len}")
    return header


def _tensor_span(rel: str, key: str, info: Any, buffer_len: int) -> tuple[int, int]:
    if not isinstance(info, dict):
        raise InvalidArtifact(f"{rel}: tensor {key!r} entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise InvalidArtifact(f"{rel}: tensor {key!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidArtifact(f"{rel}: tensor {key!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise InvalidArtifact(f"{rel}: tensor {key!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= buffer_len:
        raise InvalidArtifact(
            f"{rel}: tensor {key!r} data_offsets {offsets} fall outside the data buffer ({buffer_len} bytes)"
        )
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or end - begin != bits // 8:
        raise InvalidArtifact(
            f"{rel}: tensor {key!r} spans {end - begin} bytes but {dtype}{shape} needs {bits / 8:g}"
        )
    return begin, end


def read_json(path: Path, rel: str) -> Any:
    """Parse a JSON file, turning errors into :class:`InvalidArtifact`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArtifact(f"{rel}: not valid JSON ({exc})") from None


def read_json_object(path: Path, rel: str) -> dict[str, Any]:
    """Like :func:`read_json`, but the document must be an object."""
    value = read_json(path, rel)
    if not isinstance(value, dict):
        raise InvalidArtifact(f"{rel}: expected a JSON object")
    return value


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so multi-GB weights do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_files(folder: Path, files: list[str] | None = None) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (or of ``files``), keyed by relative POSIX path."""
    names = files if files is not None else list_files(folder)
    return {rel: sha256_file(folder / rel) for rel in names}


def compare_digests(expected: dict[str, str], folder: Path) -> dict[str, str]:
    """Differences between recorded digests and a folder: path -> modified | missing | unexpected."""
    problems: dict[str, str] = {}
    present = set(list_files(folder)) if folder.is_dir() else set()
    for rel, digest in expected.items():
        if rel not in present:
            problems[rel] = "missing"
        elif sha256_file(folder / rel) != digest:
            problems[rel] = "modified"
    for rel in sorted(present - expected.keys()):
        problems[rel] = "unexpected"
    return problems
