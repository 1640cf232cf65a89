"""Distributed training with ``torchrun`` and parallel hyperparameter search.

``gpt2-agent train CONFIG --nproc N`` runs ``python -m torch.distributed.run`` with this module as
the per-rank entry point (DDP, gloo on CPU, nccl where GPUs exist; only rank 0 writes checkpoints
and registers). Multi-node flags pass through the ``GPT2_AGENT_NNODES``, ``GPT2_AGENT_NODE_RANK``,
``GPT2_AGENT_MASTER_ADDR`` and ``GPT2_AGENT_MASTER_PORT`` environment variables.

``gpt2-agent hpo CONFIG --workers N`` starts N processes that run trials of one Optuna study in
the project's database; the best trial is registered once, after all of them finish.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpt2_agent.config import Settings


class HpoWorkerError(RuntimeError):
    """A parallel search worker failed; the message carries its last error line."""


def torchrun_command(config: Path, overrides: Sequence[str], *, nproc: int, fresh: bool) -> list[str]:
    """The ``torchrun`` command line for one node."""
    env = os.environ
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--nnodes={env.get('GPT2_AGENT_NNODES', '1')}",
        f"--node_rank={env.get('GPT2_AGENT_NODE_RANK', '0')}",
        f"--master_addr={env.get('GPT2_AGENT_MASTER_ADDR', '127.0.0.1')}",
        f"--master_port={env.get('GPT2_AGENT_MASTER_PORT', '29500')}",
        "-m",
        "gpt2_agent.cli.distributed",
        str(config),
        *[f"--set={item}" for item in overrides],
    ]
    if fresh:
        cmd.append("--fresh")
    return cmd


def launch(config: Path, overrides: Sequence[str], *, nproc: int, fresh: bool) -> int:
    """Run a distributed training on this node; returns torchrun's exit code."""
    return subprocess.call(torchrun_command(config, overrides, nproc=nproc, fresh=fresh))


def hpo_workers(
    config: Path,
    settings: Settings,
    *,
    trials: int,
    workers: int,
    overrides: Sequence[str],
    study: str | None,
) -> Any:
    """Run ``trials`` trials split over ``workers`` processes against one study, then register the
    study's best model once."""
    from gpt2_agent.training import load_config, run_hpo

    name = study or f"{load_config(config, list(overrides)).name}-hpo"
    share = math.ceil(trials / workers)
    # Migrate and create the study here, once: N processes doing it at the same moment race.
    run_hpo(config, settings, trials=0, overrides=list(overrides), study_name=name, register=False)
    base = [sys.executable, "-m", "gpt2_agent.cli.main", "hpo", str(config), "--study", name, "--json"]
    extra = [f"--set={item}" for item in overrides]
    procs = [
        subprocess.Popen(
            [*base, "--trials", str(share), "--no-register", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GPT2_AGENT_HPO_SEED": str(i + 1)},
        )
        for i in range(workers)
    ]
    errors = [(p.wait(), p.stderr.read() if p.stderr else "") for p in procs]
    failed = [err.strip().splitlines()[-1] if err.strip() else f"exit {code}" for code, err in errors if code]
    if failed:
        raise HpoWorkerError(f"{len(failed)} of {workers} hpo workers failed: {'; '.join(failed)}")
    # No new trials: read the study's best (over every worker) and register it.
    return run_hpo(config, settings, trials=0, overrides=list(overrides), study_name=name)


def _rank_main(argv: Sequence[str]) -> int:
    """Entry point of each rank under torchrun."""
    import argparse

    from gpt2_agent.config import load_settings
    from gpt2_agent.training import train_from_config

    parser = argparse.ArgumentParser(prog="gpt2-agent train (rank)")
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    train_from_config(
        args.config, load_settings(), overrides=args.overrides, progress=rank == 0, resume=not args.fresh
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(_rank_main(sys.argv[1:]))
