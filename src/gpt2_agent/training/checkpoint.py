"""Training checkpoints without pickle, written atomically.

A checkpoint is a folder ``step-00000100/`` under the run's ``checkpoints/`` folder::

    model.safetensors      model weights (tied weights stored once)
    optimizer.safetensors  optimizer tensors (Adam moments, step counts)
    rng.safetensors        torch generator state
    trainer_state.json     step, loader positions, optimizer hyper-parameters, Python/NumPy RNG,
                           early-stopping state, and the SHA-256 of every other file

It is written to a temporary folder, flushed to disk, then renamed into place; only after that
does the ``latest`` pointer move. A crash at any moment therefore leaves the previous good
checkpoint as ``latest``. Loading verifies every checksum and names the file that fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors.torch import load_model as load_model_weights
from safetensors.torch import save_model as save_model_weights

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
LATEST_FILE = "latest"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read: missing, truncated or corrupt (the message names the file)."""


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


# --- optimizer -------------------------------------------------------------------------------
def optimizer_to_safe(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (for safetensors) and JSON values."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_safe(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Rebuild an optimizer ``state_dict`` from :func:`optimizer_to_safe`'s parts."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


# --- RNG -------------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every generator the training loop may touch: torch (tensors), Python and NumPy (JSON)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    py = random.getstate()
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_meta = meta["numpy"]
    np.random.set_state((np_meta[0], np.asarray(np_meta[1], dtype=np.uint32), *np_meta[2:]))


# --- files -----------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    root: str | Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    extra_files: dict[str, dict[str, Any]] | None = None,
    keep: int = 2,
) -> Path:
    """Write the checkpoint of ``step`` atomically and point ``latest`` at it.

    :param state: JSON-serialisable trainer state (step, loader positions, early stopping...).
    :param extra_files: more JSON files to include (for example one loader state per rank).
    :param keep: how many recent checkpoints to keep (older ones are deleted afterwards).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model_weights(model, str(tmp / MODEL_FILE))
    opt_tensors, opt_meta = optimizer_to_safe(optimizer)
    save_file(opt_tensors, str(tmp / OPTIMIZER_FILE))
    rng_tensors, rng_meta = rng_state()
    save_file(rng_tensors, str(tmp / RNG_FILE))
    for name, payload in (extra_files or {}).items():
        (tmp / name).write_text(json.dumps(payload), encoding="utf-8")
    files = {}
    for path in sorted(tmp.iterdir()):
        _fsync_file(path)
        files[path.name] = _sha256(path)
    full_state = {
        **state,
        "format": FORMAT_VERSION,
        "step": step,
        "optimizer": opt_meta,
        "rng": rng_meta,
        "files": files,
    }
    _write_json_atomic(tmp / STATE_FILE, full_state)
    _fsync_dir(tmp)
    if final.exists():  # the same step written again after a resume: replace it as a whole
        old = root / f".old-{final.name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(root)
    _write_json_atomic(root / LATEST_FILE, {"checkpoint": final.name, "step": step})
    _fsync_dir(root)
    _prune(root, keep=keep, current=final.name)
    return final


def _prune(root: Path, *, keep: int, current: str) -> None:
    steps = sorted(_list_steps(root), reverse=True)
    for _, path in steps[max(keep, 1) :]:
        if path.name != current:
            shutil.rmtree(path, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):
        if stale.is_dir() and not stale.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)


def _list_steps(root: Path) -> list[tuple[int, Path]]:
    out = []
    if root.is_dir():
        for path in root.iterdir():
            match = _STEP_DIR.match(path.name)
            if match and path.is_dir():
                out.append((int(match.group(1)), path))
    return out


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root`` (``None`` when there is none).

    Follows the ``latest`` pointer; if it is missing or names a folder that is gone, the
    highest ``step-*`` folder with a state file is used. Temporary folders are never chosen.
    """
    root = Path(root)
    pointer = root / LATEST_FILE
    if pointer.is_file():
        try:
            name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
            candidate = root / name
            if (candidate / STATE_FILE).is_file():
                return candidate
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable checkpoint pointer %s", pointer)
    for _, path in sorted(_list_steps(root), reverse=True):
        if (path / STATE_FILE).is_file():
            return path
    return None


def read_state(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint's ``trainer_state.json`` and the checksums of its files."""
    path = Path(path)
    state_file = path / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint file {state_file} is missing") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {state_file} is corrupt: {exc}") from exc
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint file {state_file} has unsupported format {state.get('format')!r}")
    for name, digest in state.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(
                f"checkpoint file {file} is corrupt (checksum mismatch); delete {path} to resume from an "
                "older checkpoint"
            )
    return state


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load weights (and optimizer, RNG) from a checkpoint folder; return its trainer state."""
    path = Path(path)
    state = read_state(path)
    try:
        missing, unexpected = load_model_weights(model, str(path / MODEL_FILE), strict=False)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint file {path / MODEL_FILE} cannot be loaded: {exc}") from exc
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint file {path / MODEL_FILE} does not fit the model "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    if optimizer is not None:
        try:
            tensors = load_file(str(path / OPTIMIZER_FILE))
            optimizer.load_state_dict(optimizer_from_safe(tensors, state["optimizer"]))
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint file {path / OPTIMIZER_FILE} cannot be loaded: {exc}") from exc
    if restore_rng:
        try:
            set_rng_state(load_file(str(path / RNG_FILE)), state["rng"])
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint file {path / RNG_FILE} cannot be loaded: {exc}") from exc
    return state


def read_extra(path: str | Path, name: str) -> dict[str, Any]:
    """One of the ``extra_files`` of a checkpoint (already checksum-verified by :func:`read_state`)."""
    file = Path(path) / name
    try:
        payload: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint file {file} is missing") from exc
    except ValueError as exc:
        raise CheckpointError(f"checkpoint file {file} is corrupt: {exc}") from exc
    return payload


__all__ = [
    "CheckpointError",
    "latest_checkpoint",
    "load_checkpoint",
    "read_extra",
    "read_state",
    "save_checkpoint",
    "step_dir_name",
]
