"""Download bundles: round trip to identical logits, and refusal of hostile archives."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, GPT2ForSequenceClassification

from gpt2_agent.registry import ChecksumMismatch, InvalidArtifact, Registry

MakeOutput = Callable[..., Path]


def test_bundle_round_trip_gives_identical_logits(
    registry: Registry,
    make_output: MakeOutput,
    tmp_path: Path,
    reference_model: GPT2ForSequenceClassification,
) -> None:
    v = registry.register(make_output(), "audit", metrics={"roc_auc": 0.8}, eval_set_hash="e")
    bundle = registry.bundle("audit", v.version)
    assert bundle.name == "audit-v1.tar.gz"
    assert registry.bundle("audit", v.version) == bundle, "cached: versions never change"

    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    folder = tmp_path / "unpacked" / "audit-v1"
    loaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = torch.tensor([tokenizer.encode("order approve amount card")])
    with torch.no_grad():
        expected = reference_model(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
    assert torch.equal(expected, got)
    assert loaded.config.id2label == {0: "approve", 1: "reject"}

    # Same bytes every time: the bundle is reproducible.
    again = registry.bundle("audit", v.version, dest=tmp_path / "again.tar.gz")
    assert again.read_bytes() == bundle.read_bytes()


def test_import_bundle_registers_a_new_version(registry: Registry, make_output: MakeOutput) -> None:
    v = registry.register(make_output(), "audit", metrics={"roc_auc": 0.8}, eval_set_hash="e", created_by="a")
    bundle = registry.bundle("audit", v.version)
    imported = registry.import_bundle(bundle, created_by="importer")
    assert (imported.name, imported.version, imported.created_by) == ("audit", 2, "importer")
    assert imported.eval_set_hash == "e"
    assert imported.metrics == {"roc_auc": 0.8}
    assert imported.files == v.files, "same bytes, same digests"
    other = registry.import_bundle(bundle, name="audit-copy")
    assert other.ref == "audit-copy:1"
    assert registry.get_model("audit-copy").task == "classify"
    assert not any((registry.root / ".imports").iterdir()), "scratch folders are removed"


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), b"x"


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_file("m/config.json"), _file("../x")], "escapes"),
        ([_file("m/config.json"), _file("m/../../x")], "escapes"),
        ([_file("/tmp/abs")], "escapes"),
        ([_file("m/config.json"), _link("m/vocab.txt", "/etc/passwd", tarfile.SYMTYPE)], "is a link"),
        ([_file("m/config.json"), _link("m/vocab.txt", "m/config.json", tarfile.LNKTYPE)], "is a link"),
        ([_file("m/config.json"), _link("m/fifo", "", tarfile.FIFOTYPE)], "not a regular file"),
        ([_file("a/config.json"), _file("b/config.json")], "exactly one top folder"),
    ],
)
def test_hostile_bundles_are_refused(
    registry: Registry, tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    bundle = _tar(tmp_path / "evil.tar.gz", members)
    with pytest.raises(InvalidArtifact, match=message):
        registry.import_bundle(bundle, name="evil")
    assert not (tmp_path / "x").exists()
    assert not (registry.root.parent / "x").exists()
    assert registry.list_models() == []


def test_bundle_with_tampered_file_is_refused(
    registry: Registry, make_output: MakeOutput, tmp_path: Path
) -> None:
    v = registry.register(make_output(), "audit")
    bundle = registry.bundle("audit", v.version)
    # Rewrite the archive with one changed byte in the weights, keeping the original manifest.
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            fh = src.extractfile(member)
            data = fh.read() if fh else None
            if member.name.endswith("model.safetensors") and data is not None:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ChecksumMismatch, match=r"model.safetensors \(modified\)"):
        registry.import_bundle(tampered, name="tampered")
    assert registry.list_models()[0].name == "audit" and len(registry.list_models()) == 1


def test_not_a_tar_is_refused(registry: Registry, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(InvalidArtifact, match="not a readable tar"):
        registry.import_bundle(junk)
