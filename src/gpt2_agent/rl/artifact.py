"""Gate policies as registry artifacts: a folder of safetensors and JSON, never a pickle.

Layout of a policy folder::

    config.json          {"model_type": "gate-policy", "kind": ..., "env_version": ...}
                         (the registry needs a config.json)
    policy.json          everything needed to rebuild the policy: kind, learner, environment
                         version, observation fields, actions, discretizer or network shape,
                         cost model and hard rules it was trained with, training notes
    policy.safetensors   the numbers: the cost table and visit counts (tabular), the MLP's
                         weights (network) or the two thresholds
    q_table.json         (tabular only) the same table, readable, one row per state

:func:`load_policy` refuses a folder whose ``env_version`` differs from this code's
:data:`~gpt2_agent.rl.features.ENV_VERSION` (another observation layout or action order would
silently mean something else) with :class:`PolicyVersionMismatch`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch

from gpt2_agent.rl.features import ACTIONS, ENV_VERSION, OBS_FIELDS
from gpt2_agent.rl.policies import (
    MLP,
    Discretizer,
    FixedPolicy,
    NetworkPolicy,
    Policy,
    TabularPolicy,
    ThresholdPolicy,
)

FORMAT = "gpt2-agent-gate-policy/1"
POLICY_FILE = "policy.json"
WEIGHTS_FILE = "policy.safetensors"
CONFIG_FILE = "config.json"
TABLE_FILE = "q_table.json"
MODEL_TYPE = "gate-policy"


class PolicyArtifactError(ValueError):
    """A policy folder is missing, malformed or cannot be rebuilt."""


class PolicyVersionMismatch(PolicyArtifactError):
    """The policy was trained for another environment version (observation layout, actions)."""


def save_policy(policy: Policy, folder: Path | str, *, meta: dict[str, Any] | None = None) -> Path:
    """Write ``policy`` to ``folder`` (replaced if it exists; written beside and renamed in)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info: dict[str, Any] = {
        "format": FORMAT,
        "env_version": ENV_VERSION,
        "obs_fields": list(OBS_FIELDS),
        "actions": list(ACTIONS),
        **(meta or {}),
    }
    if isinstance(policy, TabularPolicy):
        info.update(
            kind="tabular",
            discretizer=policy.discretizer.as_dict(),
            epsilon_min=policy.epsilon_min,
            epsilon_max=policy.epsilon_max,
            explore_mode=policy.explore_mode,
        )
        save_numpy(
            {"costs": np.ascontiguousarray(policy.costs), "counts": np.ascontiguousarray(policy.counts)},
            str(tmp / WEIGHTS_FILE),
        )
        rows = [
            {
                "state": s,
                "costs": [round(float(c), 4) for c in policy.costs[s]],
                "counts": policy.counts[s].tolist(),
            }
            for s in range(len(policy.costs))
        ]
        _write_json(tmp / TABLE_FILE, {"actions": list(ACTIONS), "rows": rows})
    elif isinstance(policy, NetworkPolicy):
        info.update(
            kind="network",
            network={"sizes": policy.net.sizes, "activation": policy.net.activation, "output": policy.output},
            epsilon=policy.epsilon,
            explore_mode=policy.explore_mode,
            deterministic=policy.deterministic,
        )
        state = {k: v.detach().cpu().contiguous() for k, v in policy.net.state_dict().items()}
        save_torch(state, str(tmp / WEIGHTS_FILE))
    elif isinstance(policy, ThresholdPolicy):
        info.update(kind="thresholds")
        save_numpy({"thresholds": np.array([policy.approve_min, policy.reject_max])}, str(tmp / WEIGHTS_FILE))
    elif isinstance(policy, FixedPolicy):
        info.update(kind="fixed")
        save_numpy({"action": np.array([policy.action], dtype=np.int64)}, str(tmp / WEIGHTS_FILE))
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PolicyArtifactError(f"cannot save a policy of type {type(policy).__name__}")
    _write_json(tmp / POLICY_FILE, info)
    _write_json(
        tmp / CONFIG_FILE, {"model_type": MODEL_TYPE, "kind": info["kind"], "env_version": ENV_VERSION}
    )
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_policy_info(folder: Path | str) -> dict[str, Any]:
    """The folder's ``policy.json``, checked for format and environment version."""
    path = Path(folder) / POLICY_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyArtifactError(f"{folder}: {POLICY_FILE} is missing; not a gate policy") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyArtifactError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise PolicyArtifactError(f"{path}: not a gate policy of format {FORMAT}")
    if info.get("env_version") != ENV_VERSION:
        raise PolicyVersionMismatch(
            f"{folder}: the policy was trained for environment {info.get('env_version')!r}, "
            f"but this gate runs {ENV_VERSION!r}; retrain it (gpt2-agent rl train)"
        )
    if list(info.get("actions") or []) != list(ACTIONS) or list(info.get("obs_fields") or []) != list(
        OBS_FIELDS
    ):
        raise PolicyVersionMismatch(
            f"{folder}: the policy's actions or observation fields differ from this gate's"
        )
    return info


def load_policy(folder: Path | str) -> tuple[Policy, dict[str, Any]]:
    """Rebuild the policy in ``folder``; returns it with its ``policy.json``."""
    folder = Path(folder)
    info = read_policy_info(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise PolicyArtifactError(f"{folder}: {WEIGHTS_FILE} is missing")
    kind = info.get("kind")
    try:
        if kind == "tabular":
            arrays = load_numpy(str(weights))
            policy: Policy = TabularPolicy(
                Discretizer.from_dict(info["discretizer"]),
                arrays["costs"],
                arrays["counts"],
                epsilon_min=float(info.get("epsilon_min", 0.0)),
                epsilon_max=float(info.get("epsilon_max", 0.0)),
                explore_mode=str(info.get("explore_mode", "escalate")),
            )
        elif kind == "network":
            spec = info["network"]
            net = MLP([int(s) for s in spec["sizes"]], spec["activation"])
            state: dict[str, torch.Tensor] = load_torch(str(weights))
            net.load_state_dict(state, strict=True)
            policy = NetworkPolicy(
                net,
                spec["output"],
                epsilon=float(info.get("epsilon", 0.0)),
                explore_mode=str(info.get("explore_mode", "escalate")),
                deterministic=bool(info.get("deterministic", False)),
            )
        elif kind == "thresholds":
            approve_min, reject_max = (float(x) for x in load_numpy(str(weights))["thresholds"])
            policy = ThresholdPolicy(approve_min, reject_max)
        elif kind == "fixed":
            policy = FixedPolicy(int(load_numpy(str(weights))["action"][0]))
        else:
            raise PolicyArtifactError(f"{folder}: unknown policy kind {kind!r}")
    except (KeyError, TypeError, RuntimeError) as exc:
        raise PolicyArtifactError(f"{folder}: cannot rebuild the {kind} policy ({exc})") from exc
    return policy, info


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


__all__ = [
    "FORMAT",
    "MODEL_TYPE",
    "POLICY_FILE",
    "WEIGHTS_FILE",
    "PolicyArtifactError",
    "PolicyVersionMismatch",
    "load_policy",
    "read_policy_info",
    "save_policy",
]
