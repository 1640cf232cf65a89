"""DDP under torchrun (gloo, 2 ranks): disjoint data, identical weights, per-rank resumable loaders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpt2_agent.training.batches import TensorBatches

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from test_trainer import _cfg, _data, _lm, _loss
    from gpt2_agent.training.batches import TensorBatches
    from gpt2_agent.training.trainer import Trainer

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    out, steps = sys.argv[1], int(sys.argv[2])
    seen = []
    batches = TensorBatches(_data(64), batch_size=4, pad_token_id=0, seed=1, rank=rank, world_size=world)
    trainer = Trainer(_lm(), _cfg(max_steps=steps, checkpoint_every=4), batches, out_dir=out, loss_fn=_loss)
    original = trainer.compute_loss
    def spy(module, batch):
        loss = original(module, batch)
        seen.append(float(loss))  # this rank's own micro-batch loss, before DDP averages grads
        return loss
    trainer.compute_loss = spy
    result = trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    same = all(torch.equal(gathered[0], g) for g in gathered)
    with open(os.path.join(out, f"rank{{rank}}.json"), "w") as fh:
        report = {{"seen": seen, "same": same, "resumed_from": result.resumed_from, "steps": result.steps}}
        json.dump(report, fh)
    dist.destroy_process_group()
    """
)


def _torchrun(script: Path, out: Path, steps: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = subprocess.run([*cmd, str(out), str(steps)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.timeout(300)
def test_two_ranks_train_in_lockstep_and_resume(tmp_path: Path) -> None:
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    out = tmp_path / "run"
    _torchrun(script, out, 4)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["same"] for r in ranks), "DDP must keep the replicas identical"
    assert ranks[0]["seen"] != ranks[1]["seen"], "each rank must train on its own slice of the data"
    latest = out / "checkpoints" / "step-00000004"
    assert (latest / "loader-rank0.json").is_file() and (latest / "loader-rank1.json").is_file()
    assert json.loads((latest / "loader-rank1.json").read_text())["batch"] == 4

    _torchrun(script, out, 8)  # resume both ranks from step 4
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["resumed_from"] for r in ranks] == [4, 4] and all(r["steps"] == 8 for r in ranks)
    assert all(r["same"] for r in ranks)


def test_tensor_batches_split_ranks_without_overlap() -> None:
    features = {"input_ids": [[i] for i in range(23)]}
    rows = []
    for rank in range(3):
        batches = TensorBatches(features, batch_size=2, pad_token_id=0, seed=4, rank=rank, world_size=3)
        rows.append([int(x) for b in batches for x in b["input_ids"][:, 0]])
    assert [len(r) for r in rows] == [7, 7, 7]  # 23 // 3 each; the remainder is dropped
    assert len(set(rows[0]) | set(rows[1]) | set(rows[2])) == 21
