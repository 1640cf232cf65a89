"""Validation of model folders: safetensors only, headers checked without trusting them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from gpt2_agent.registry import InvalidArtifact, check_safetensors, validate_artifact
from gpt2_agent.registry.artifact import MAX_HEADER_BYTES

PICKLED_INT = b"\x80\x04K\x01."  # the pickle protocol-4 encoding of the integer 1


def st_bytes(header: dict[str, Any], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.fixture
def folder(tmp_path: Path, template_output: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(template_output, out)
    return out


def test_valid_folder(folder: Path) -> None:
    summary = validate_artifact(folder)
    assert summary.weights == ["model.safetensors"]
    assert "config.json" in summary.files and "tokenizer.json" in summary.files
    assert summary.config["model_type"] == "gpt2"


def test_real_safetensors_with_metadata_passes(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    tensors = {"a": torch.zeros(3, 2), "b": torch.ones(5, dtype=torch.bfloat16), "c": torch.zeros(0)}
    save_file(tensors, str(path), metadata={"format": "pt"})
    header = check_safetensors(path)
    assert set(header) == {"a", "b", "c", "__metadata__"}


@pytest.mark.parametrize("name", ["training_args.bin", "optimizer.pt", "rng.pth", "state.pkl", "x.pickle"])
def test_pickle_file_names_are_refused(folder: Path, name: str) -> None:
    (folder / name).write_bytes(PICKLED_INT)
    with pytest.raises(InvalidArtifact, match=r"pickle"):
        validate_artifact(folder)


def test_safetensors_that_is_really_a_pickle(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(PICKLED_INT + b"\x00" * 64)
    with pytest.raises(InvalidArtifact, match=r"pickle"):
        validate_artifact(folder)


def test_pickle_content_behind_an_allowed_suffix(folder: Path) -> None:
    (folder / "notes.txt").write_bytes(PICKLED_INT)
    with pytest.raises(InvalidArtifact, match=r"notes.txt: content is a pickle"):
        validate_artifact(folder)
    (folder / "notes.txt").write_bytes(b"PK\x03\x04rest-of-a-torch-zip")
    with pytest.raises(InvalidArtifact, match=r"zip"):
        validate_artifact(folder)


def test_other_file_types_are_refused(folder: Path) -> None:
    (folder / "run.sh").write_text("echo hi")
    with pytest.raises(InvalidArtifact, match=r"'.sh' is not allowed"):
        validate_artifact(folder)


def test_header_length_larger_than_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 4096) + b"{}")
    with pytest.raises(InvalidArtifact, match=r"larger than the file"):
        check_safetensors(path)


def test_huge_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}")
    with pytest.raises(InvalidArtifact, match=r"exceeds the limit"):
        check_safetensors(path)


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            b"\x00" * 4,
            "outside the data buffer",
        ),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\x00" * 8, "needs 12"),
        ({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8, "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\x00" * 8, "invalid shape"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, b"\x00" * 8, "invalid data_offsets"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\x00" * 8, "gap or overlap"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\x00" * 12,
            "gap or overlap",
        ),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 8, "cover 4 bytes"),
        ({"__metadata__": {"a": 1}}, b"", "__metadata__"),
        ({"w": "nope"}, b"", "not an object"),
    ],
)
def test_bad_headers(tmp_path: Path, header: dict[str, Any], data: bytes, message: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(st_bytes(header, data))
    with pytest.raises(InvalidArtifact, match=message):
        check_safetensors(path)


def test_header_not_json(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{[" + b"\x00" * 8)
    with pytest.raises(InvalidArtifact, match=r"not valid JSON"):
        check_safetensors(path)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_only_ever_raise_invalid_artifact(
    tmp_path_factory: pytest.TempPathFactory, blob: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "model.safetensors"
    path.write_bytes(blob)
    with contextlib.suppress(InvalidArtifact):
        check_safetensors(path)


def test_missing_config_and_missing_weights(folder: Path) -> None:
    (folder / "config.json").unlink()
    with pytest.raises(InvalidArtifact, match=r"config.json is missing"):
        validate_artifact(folder)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").unlink()
    with pytest.raises(InvalidArtifact, match=r"no .safetensors weights"):
        validate_artifact(folder)


def test_broken_json_is_refused(folder: Path) -> None:
    (folder / "metrics.json").write_text("{not json")
    with pytest.raises(InvalidArtifact, match=r"metrics.json: not valid JSON"):
        validate_artifact(folder)


def test_symlinks_are_refused(folder: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    os.symlink(secret, folder / "vocab.txt")
    with pytest.raises(InvalidArtifact, match=r"symbolic link"):
        validate_artifact(folder)
    (folder / "vocab.txt").unlink()
    os.symlink(tmp_path, folder / "sub")
    with pytest.raises(InvalidArtifact, match=r"symbolic link"):
        validate_artifact(folder)
