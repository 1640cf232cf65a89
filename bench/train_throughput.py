"""Training throughput: our Trainer against transformers' Trainer on the same GPT-2 LM.

Model: GPT2LMHeadModel, 6 layers, width 384, 6 heads, context 256, batch 16, dropout 0 and
``gelu_pytorch_tanh`` for both (the same ``build_model`` output). Data: the same synthetic token
stream (a random bigram language, so the loss falls) in the same order, the same targets,
AdamW (fused, betas 0.9/0.95, weight decay 0.1 on matrices), clipping at 1.0, warmup then
cosine to 0. Each (trainer, precision) runs in its own subprocess so peak RSS is its own.

Reported per run: tokens/s after the warm-up steps, peak RSS, final loss (mean of the last 5
steps), and MFU: (6N + 6Vd + 12LTd) FLOPs per token against the matmul peak this script
measures first (2048x2048x2048 matmuls, best of several) in fp32 and bf16.

    .venv/bin/python bench/train_throughput.py                 # fp32 and bf16, both trainers
    .venv/bin/python bench/train_throughput.py --steps 8 --rounds 2 --vocab 8192
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N_LAYER, N_EMBD, N_HEAD, CONTEXT, BATCH = 6, 384, 6, 256, 16


# --- measurements in the parent ----------------------------------------------------------------
def matmul_peak(dtype_name: str, threads: int, size: int = 2048, reps: int = 5) -> float:
    """Best GFLOP/s of a square matmul, timed by process CPU time / threads.

    CPU time stays right on a machine shared with other work, where wall time does not; on an
    idle machine the two agree. MFU is computed the same way (tokens per CPU-second).
    """
    import torch

    torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        a @ b
        best = min(best, (time.process_time() - start) / threads)
    return 2 * size**3 / best / 1e9


# --- one run, in a subprocess ------------------------------------------------------------------
def _now() -> tuple[float, float]:
    """Wall-clock and process CPU time (all threads): the second is robust on a busy machine."""
    return time.perf_counter(), time.process_time()


def _data(vocab: int, n_batches: int, seed: int = 0) -> Any:
    """(n_batches, BATCH, CONTEXT + 1) tokens of a bigram language with 4 successors per token."""
    import torch

    g = torch.Generator().manual_seed(seed)
    successors = torch.randint(0, vocab, (vocab, 4), generator=g)
    total = n_batches * BATCH * (CONTEXT + 1)
    tokens = torch.empty(total, dtype=torch.long)
    tokens[0] = 0
    choice = torch.randint(0, 4, (total,), generator=g)
    prev = 0
    for i in range(1, total):  # a Python loop, but only once per run and before timing
        prev = int(successors[prev, choice[i]])
        tokens[i] = prev
    return tokens.view(n_batches, BATCH, CONTEXT + 1)


def _model(vocab: int) -> Any:
    import torch

    from gpt2_agent.modeling import ModelSpec, build_model

    torch.manual_seed(0)
    spec = ModelSpec(
        task="causal_lm", n_layer=N_LAYER, n_embd=N_EMBD, n_head=N_HEAD, context=CONTEXT, vocab_size=vocab
    )
    return build_model(spec, vocab_size=vocab, eos_token_id=0)


def flops_per_token(model: Any) -> tuple[float, int]:
    """6N + 6Vd + 12LTd, with N the non-embedding parameters."""
    cfg = model.config
    n_total = sum(p.numel() for p in model.parameters())
    n_embed = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    n = n_total - n_embed
    return 6 * n + 6 * cfg.vocab_size * cfg.n_embd + 12 * cfg.n_layer * CONTEXT * cfg.n_embd, n


class _FixedBatches:
    """The benchmark's batches in a fixed order, as a trainer batch source."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.pos = 0

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Any:
        while self.pos < len(self.data):
            block = self.data[self.pos]
            self.pos += 1
            yield {"input_ids": block[:, :-1].contiguous()}
        self.pos = 0

    def state_dict(self) -> dict[str, int]:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.pos = state["pos"]


def run_ours(args: argparse.Namespace, data: Any, out: Path) -> dict[str, Any]:
    from gpt2_agent.modeling import causal_lm_loss
    from gpt2_agent.training.trainer import Trainer, TrainerConfig

    model = _model(args.vocab)
    cfg = TrainerConfig(
        max_steps=args.warmup + args.steps,
        lr=6e-4,
        warmup_steps=0,  # HF's warmup starts at lr 0, ours one step later; none keeps them equal
        min_lr_ratio=0.0,
        weight_decay=0.1,
        beta2=0.95,
        grad_clip=1.0,
        precision=args.precision,
        compile=args.impl == "ours+compile",
        threads=args.threads,
        batch_size=BATCH,
    )
    times: list[float] = []
    losses: list[float] = []
    trainer = Trainer(
        model,
        cfg,
        _FixedBatches(data),
        out_dir=out,
        # Labels are the shifted inputs with the last position ignored: the same targets as HF's.
        loss_fn=lambda m, b: causal_lm_loss(m, b["input_ids"]),
    )
    trainer.add_callback("on_step", lambda t, m: times.append(_now()) or losses.append(m["loss"]))
    trainer.fit(resume=False)
    return {"times": times, "losses": losses, "model": model}


def run_hf(args: argparse.Namespace, data: Any, out: Path) -> dict[str, Any]:
    import torch
    from torch.utils.data import Dataset, SequentialSampler
    from transformers import Trainer, TrainerCallback, TrainingArguments

    torch.set_num_threads(args.threads)
    model = _model(args.vocab)
    flat = data.reshape(-1, CONTEXT + 1)

    class Blocks(Dataset[dict[str, Any]]):
        def __len__(self) -> int:
            return len(flat)

        def __getitem__(self, i: int) -> dict[str, Any]:
            ids = flat[i, :-1]
            return {"input_ids": ids, "labels": ids}

    times: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(_now())

        def on_log(
            self, _args: Any, _state: Any, _control: Any, logs: dict[str, Any] | None = None, **k: Any
        ) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    class InOrder(Trainer):  # same batches in the same order as ours
        def _get_train_sampler(self, *a: Any, **k: Any) -> Any:
            return SequentialSampler(self.train_dataset)

    targs = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=BATCH,
        max_steps=args.warmup + args.steps,
        learning_rate=6e-4,
        warmup_steps=0,
        lr_scheduler_type="cosine",
        weight_decay=0.1,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        bf16=args.precision == "bf16",
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        torch_compile=args.impl == "hf+compile",
    )
    InOrder(model=model, args=targs, train_dataset=Blocks(), callbacks=[Clock()]).train()
    # HF divides the summed loss by every label (B*T) though the shift leaves B*(T-1) targets;
    # rescale so both columns are the mean loss per target token.
    losses = [x * CONTEXT / (CONTEXT - 1) for x in losses]
    return {"times": times, "losses": losses, "model": model}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    data = _data(args.vocab, args.warmup + args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        run = run_hf if args.impl.startswith("hf") else run_ours
        result = run(args, data, Path(tmp))
    times, losses = result["times"], result["losses"]
    timed = times[args.warmup - 1 :] if args.warmup else [times[0], *times]
    seconds = timed[-1][0] - timed[0][0]
    cpu_seconds = timed[-1][1] - timed[0][1]
    steps = len(timed) - 1
    fpt, n_params = flops_per_token(result["model"])
    payload = {
        "impl": args.impl,
        "precision": args.precision,
        "tokens_per_s": steps * BATCH * CONTEXT / seconds,
        "tokens_per_cpu_s": steps * BATCH * CONTEXT / cpu_seconds,
        "step_seconds": seconds / steps,
        "final_loss": statistics.fmean(losses[-5:]),
        "first_loss": losses[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "flops_per_token": fpt,
        "non_embedding_params": n_params,
    }
    print("RESULT " + json.dumps(payload), flush=True)


# --- orchestration -----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument(
        "--vocab", type=int, default=50257, help="50257: GPT-2's; 8192: our tokenizer's default"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions (medians reported)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--impls", default="ours,hf", help="ours, hf, ours+compile, hf+compile")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.impl, args.precision = args.worker
        worker(args)
        return

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    from gpt2_agent.training.trainer import bf16_supported

    if not bf16_supported() and "bf16" in args.precisions.split(","):
        # Emulated bf16 runs matmuls near 1 GFLOP/s: a bf16 comparison here would take hours and
        # say nothing about bf16 training. Both trainers are compared in fp32 only.
        print("this CPU has no native bf16 (avx512_bf16 or AMX): bf16 runs are skipped")
        args.precisions = ",".join(p for p in args.precisions.split(",") if p != "bf16") or "fp32"
    peaks = {p: matmul_peak(p, args.threads) for p in args.precisions.split(",")}
    print(
        f"matmul peak ({args.threads} threads, 2048^3): "
        + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items())
    )
    print(
        f"model: GPT-2 {N_LAYER} layers, d={N_EMBD}, {N_HEAD} heads, context {CONTEXT}, batch {BATCH}, "
        f"vocab {args.vocab}; {args.warmup} warm-up + {args.steps} timed steps; {args.rounds} round(s)"
    )
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for precision in args.precisions.split(","):
            for impl in args.impls.split(","):
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    impl,
                    precision,
                    "--steps",
                    str(args.steps),
                    "--warmup",
                    str(args.warmup),
                    "--vocab",
                    str(args.vocab),
                    "--threads",
                    str(args.threads),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    print(f"{impl} {precision} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                    continue
                r = json.loads(line[len("RESULT ") :])
                dedicated = r["tokens_per_cpu_s"] * args.threads  # tokens/s with the CPUs to itself
                r["mfu"] = dedicated * r["flops_per_token"] / (peaks[precision] * 1e9)
                results.setdefault((impl, precision), []).append(r)
                print(
                    f"  {impl:13s} {precision}: {r['tokens_per_s']:8.0f} tok/s  "
                    f"{r['tokens_per_cpu_s']:8.0f} tok/cpu-s  loss {r['final_loss']:.4f}",
                    flush=True,
                )

    print()
    header = (
        f"{'trainer':13s} {'precision':9s} {'tokens/s':>9s} {'vs HF':>6s} {'tok/cpu-s':>9s} {'vs HF':>6s} "
        f"{'peak RSS':>9s} {'final loss':>10s} {'MFU':>6s}"
    )
    print(header)
    print("-" * len(header))
    for (impl, precision), runs in results.items():
        tps = statistics.median(r["tokens_per_s"] for r in runs)
        hf = results.get(("hf", precision))
        ratio = f"{tps / statistics.median(r['tokens_per_s'] for r in hf):.2f}x" if hf else "-"
        cps = statistics.median(r["tokens_per_cpu_s"] for r in runs)
        cratio = f"{cps / statistics.median(r['tokens_per_cpu_s'] for r in hf):.2f}x" if hf else "-"
        rss = max(r["peak_rss_mb"] for r in runs)
        loss = statistics.median(r["final_loss"] for r in runs)
        mfu = statistics.median(r["mfu"] for r in runs)
        print(
            f"{impl:13s} {precision:9s} {tps:9.0f} {ratio:>6s} {cps:9.0f} {cratio:>6s} "
            f"{rss:7.0f}MB {loss:10.4f} {mfu:6.1%}"
        )
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
