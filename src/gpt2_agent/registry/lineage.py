"""Code version recorded in every version's ``lineage.json``: package version plus git commit."""

from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path
from typing import Any

import gpt2_agent

logger = logging.getLogger(__name__)


@functools.cache
def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None (installed wheel, no git)."""
    here = Path(gpt2_agent.__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    if result.returncode != 0 or len(commit) != 40:
        return None
    return commit


def code_version() -> dict[str, Any]:
    """``{"package": "0.1.0", "git_commit": "<sha>" | None}``."""
    return {"package": gpt2_agent.__version__, "git_commit": git_commit()}


def complete_lineage(
    lineage: dict[str, Any], *, eval_set_hash: str | None, source_config: dict[str, Any]
) -> dict[str, Any]:
    """Fill what training did not say: code version, eval set hash, the model config.

    Training is expected to provide ``dataset_hash`` and its own ``config``; the registry never
    overwrites what is there, so a re-imported bundle keeps its original lineage.
    """
    out = dict(lineage)
    out.setdefault("code_version", code_version())
    out.setdefault("dataset_hash", None)
    out.setdefault("config", {})
    out.setdefault(
        "model_config", {k: source_config[k] for k in ("model_type", "architectures") if k in source_config}
    )
    if eval_set_hash is not None:
        out["eval_set_hash"] = eval_set_hash
    return out
