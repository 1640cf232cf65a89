"""The trainer: learning, accumulation, schedule, callbacks, early stopping, checkpoints, resume."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gpt2_agent.modeling import ModelSpec, build_model, causal_lm_loss
from gpt2_agent.training.batches import TensorBatches
from gpt2_agent.training.callbacks import read_jsonl
from gpt2_agent.training.checkpoint import CheckpointError, latest_checkpoint
from gpt2_agent.training.trainer import Trainer, TrainerConfig, TrainingError, bf16_supported, lr_at

VOCAB = 40


def _lm() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        ModelSpec(task="causal_lm", n_layer=2, n_embd=32, n_head=2, context=16, vocab_size=VOCAB)
    )


def _data(n: int = 64, seed: int = 0) -> dict[str, list[list[int]]]:
    # Counting sequences modulo VOCAB: easy to learn, so the loss must fall fast.
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, VOCAB, (n,), generator=g)
    seqs = [[(int(s) + i) % VOCAB for i in range(17)] for s in starts]
    return {"input_ids": [s[:-1] for s in seqs], "labels": [s[1:] for s in seqs]}


def _loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return causal_lm_loss(model, batch["input_ids"], batch["labels"])


def _batches(batch_size: int = 8, shuffle: bool = True, n: int = 64) -> TensorBatches:
    return TensorBatches(_data(n), batch_size=batch_size, pad_token_id=0, shuffle=shuffle, seed=1)


def _cfg(**kw: object) -> TrainerConfig:
    base: dict[str, object] = {
        "max_steps": 20,
        "lr": 3e-3,
        "precision": "fp32",
        "warmup_steps": 2,
        "threads": 1,
    }
    return TrainerConfig(**{**base, **kw})


def test_loss_falls_and_metrics_are_logged(tmp_path: Path) -> None:
    trainer = Trainer(
        _lm(),
        _cfg(max_steps=30, eval_every=10),
        _batches(),
        out_dir=tmp_path,
        loss_fn=_loss,
        eval_data=_batches(shuffle=False),
    )
    result = trainer.fit()
    records = read_jsonl(tmp_path / "metrics.jsonl")
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in train] == list(range(1, 31))
    assert [r["step"] for r in val] == [10, 20, 30]
    assert train[-1]["loss"] < 0.7 * train[0]["loss"]
    assert {"lr", "tokens_per_s", "grad_norm", "epoch"} <= set(train[0])
    assert result.steps == 30 and result.tokens_seen == 30 * 8 * 16
    assert latest_checkpoint(tmp_path / "checkpoints") is not None


def test_gradient_accumulation_matches_a_larger_batch(tmp_path: Path) -> None:
    params = []
    for batch_size, accum in ((8, 1), (4, 2)):
        model = _lm()
        cfg = _cfg(max_steps=3, batch_size=batch_size, grad_accum=accum)
        Trainer(
            model, cfg, _batches(batch_size, shuffle=False), out_dir=tmp_path / str(accum), loss_fn=_loss
        ).fit()
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(params[0], params[1], rtol=1e-4, atol=1e-5)


def test_warmup_then_cosine() -> None:
    lrs = [lr_at(s, base_lr=1.0, warmup=4, total=14, min_ratio=0.1) for s in range(15)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == pytest.approx(1.0) and lrs[9] == pytest.approx(0.55) and lrs[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(lrs[3:]))


def test_named_callback_can_stop_training(tmp_path: Path) -> None:
    seen: list[int] = []
    trainer = Trainer(_lm(), _cfg(), _batches(), out_dir=tmp_path, loss_fn=_loss)
    trainer.add_callback("on_step", lambda t, m: seen.append(m["step"]) or m["step"] < 3)
    checkpoints: list[Path] = []
    trainer.add_callback("on_checkpoint", lambda t, path: checkpoints.append(path))
    assert trainer.fit().steps == 3
    assert seen == [1, 2, 3] and checkpoints and checkpoints[-1].name == "step-00000003"
    with pytest.raises(ValueError, match="unknown callback event"):
        trainer.add_callback("on_stepp", print)


def test_early_stopping_restores_best_weights(tmp_path: Path) -> None:
    scores = iter([1.0, 0.5, 0.7, 0.8, 0.9, 1.0])
    model = _lm()
    snapshots: dict[int, torch.Tensor] = {}

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        snapshots[trainer.step] = m.transformer.wte.weight.detach().clone()
        return {"loss": next(scores)}

    cfg = _cfg(max_steps=100, eval_every=2, early_stopping_patience=2)
    trainer = Trainer(model, cfg, _batches(), out_dir=tmp_path, loss_fn=_loss, eval_fn=eval_fn)
    result = trainer.fit()
    assert result.stopped_early and result.steps == 8 and result.best_step == 4
    torch.testing.assert_close(model.transformer.wte.weight, snapshots[4])


def test_refuses_empty_data(tmp_path: Path) -> None:
    empty = TensorBatches({"input_ids": []}, batch_size=4, pad_token_id=0)
    with pytest.raises(TrainingError, match="empty"):
        Trainer(_lm(), _cfg(), empty, out_dir=tmp_path, loss_fn=_loss)


def test_needs_a_length() -> None:
    with pytest.raises(ValueError, match="max_steps or epochs"):
        TrainerConfig()


def test_epochs_set_the_number_of_steps(tmp_path: Path) -> None:
    cfg = TrainerConfig(epochs=2, batch_size=8, grad_accum=2, precision="fp32", threads=1)
    trainer = Trainer(_lm(), cfg, _batches(8, n=64), out_dir=tmp_path, loss_fn=_loss)
    assert trainer.total_steps == 8  # 2 epochs x 8 batches / 2 per step


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    Trainer(_lm(), _cfg(max_steps=4, checkpoint_every=2), _batches(), out_dir=tmp_path, loss_fn=_loss).fit()
    latest = latest_checkpoint(tmp_path / "checkpoints")
    assert latest is not None and latest.name == "step-00000004"
    weights = latest / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-10] ^= 0xFF
    weights.write_bytes(bytes(raw))
    trainer = Trainer(_lm(), _cfg(max_steps=6), _batches(), out_dir=tmp_path, loss_fn=_loss)
    with pytest.raises(CheckpointError, match=r"step-00000004/model\.safetensors"):
        trainer.fit()
    (latest / "trainer_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"trainer_state\.json is corrupt"):
        trainer.fit()


def test_unfinished_checkpoint_never_replaces_the_good_one(tmp_path: Path) -> None:
    Trainer(_lm(), _cfg(max_steps=4, checkpoint_every=2), _batches(), out_dir=tmp_path, loss_fn=_loss).fit()
    # A crash while writing step 6 leaves only a temporary folder behind.
    partial = tmp_path / "checkpoints" / ".tmp-step-00000006-999999"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    latest = latest_checkpoint(tmp_path / "checkpoints")
    assert latest is not None and latest.name == "step-00000004"
    result = Trainer(_lm(), _cfg(max_steps=6), _batches(), out_dir=tmp_path, loss_fn=_loss).fit()
    assert result.resumed_from == 4 and result.steps == 6


@pytest.mark.skipif(not bf16_supported(), reason="no native bf16 on this CPU")
def test_bf16_autocast_trains(tmp_path: Path) -> None:
    trainer = Trainer(
        _lm(), _cfg(precision="bf16", max_steps=15), _batches(), out_dir=tmp_path, loss_fn=_loss
    )
    result = trainer.fit()
    assert result.precision == "bf16"
    losses = [r["loss"] for r in read_jsonl(tmp_path / "metrics.jsonl")]
    assert losses[-1] < losses[0]
    assert next(trainer.model.parameters()).dtype == torch.float32  # master weights stay fp32


SCRIPT = textwrap.dedent(
    """
    import sys, time
    import torch
    sys.path.insert(0, {tests!r})
    from test_trainer import _batches, _cfg, _lm, _loss
    from gpt2_agent.training.trainer import Trainer
    torch.set_num_threads(1)
    out, pause = sys.argv[1], float(sys.argv[2])
    cfg = _cfg(max_steps=40, checkpoint_every=5, eval_every=10)
    trainer = Trainer(_lm(), cfg, _batches(), out_dir=out, loss_fn=_loss, eval_data=_batches(shuffle=False))
    if pause:
        trainer.add_callback("on_step", lambda t, m: time.sleep(pause))
    result = trainer.fit()
    print("RESUMED_FROM", result.resumed_from)
    """
)


def _run(script: Path, out: Path, pause: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(pause)], env=env, stdout=subprocess.PIPE, text=True
    )


def test_resume_after_sigkill_continues_the_same_loss_curve(tmp_path: Path) -> None:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    reference = _run(script, tmp_path / "ref", 0.0)
    killed = _run(script, tmp_path / "run", 0.1)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if metrics.is_file() and any(r["step"] >= 17 for r in read_jsonl(metrics)):
            break
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    last_before = max(r["step"] for r in read_jsonl(metrics))
    assert 17 <= last_before < 40, "the run must be killed mid-way"
    resumed = _run(script, tmp_path / "run", 0.0)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert "RESUMED_FROM 15" in out or f"RESUMED_FROM {last_before // 5 * 5}" in out
    reference.communicate(timeout=120)
    assert reference.returncode == 0

    ref = read_jsonl(tmp_path / "ref" / "metrics.jsonl")
    got = read_jsonl(metrics)
    for split in ("train", "val"):
        ref_steps = [(r["step"], r["loss"]) for r in ref if r["split"] == split]
        got_steps = [(r["step"], r["loss"]) for r in got if r["split"] == split]
        assert [s for s, _ in got_steps] == [s for s, _ in ref_steps]  # every step once, in order
        for (step, a), (_, b) in zip(ref_steps, got_steps, strict=True):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), f"{split} loss differs at step {step}"
    state = json.loads(
        (latest_checkpoint(tmp_path / "run" / "checkpoints") / "trainer_state.json").read_text()
    )  # type: ignore[operator]
    assert state["step"] == 40
