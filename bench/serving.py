"""Serving benchmark: audit predictions per second and latency, our runtime against a per-request pipeline.

The model is the audit classifier's shape (GPT-2, 6 layers, width 384, 6 heads) with a byte-level
BPE trained on synthetic serialized orders (~48 tokens each), fine-tuned for a few steps on a
synthetic approve/reject rule so that its answers are decisive, as a trained model's are.

Measured in the same run, interleaved per concurrency level (1, 8, 32, 64 closed-loop clients):

- **baseline**: what the seed design does, a ``transformers`` ``pipeline("text-classification")``
  built once and called once per request from each client thread (fp32);
- **runtime**: :class:`gpt2_agent.serving.ServingRuntime` (micro-batching; precision chosen by
  its checks, bf16 autocast where it agrees with fp32).

Then an open-loop run (Poisson arrivals) at half of the runtime's best throughput for p50/p99
latency, the agreement of the runtime's answers with fp32 unbatched answers on a held-out sample,
and model FLOP/s as a fraction of this machine's measured fp32 and bf16 matmul peaks.

    .venv/bin/python bench/serving.py [--duration 6] [--train-steps 30] [--quantize] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast, pipeline

from gpt2_agent.config import load_settings
from gpt2_agent.registry import Registry
from gpt2_agent.serving import CheckSample, ServingRuntime
from gpt2_agent.serving.precision import native_bf16
from gpt2_agent.store import create_database, upgrade

MODEL = "order-audit"
LABELS = ("reject", "approve")
EOS, PAD = "<|endoftext|>", "[PAD]"
CONCURRENCY = (1, 8, 32, 64)

# ---------------------------------------------------------------------- synthetic orders

_CHANNELS = ("web", "app", "wechat", "phone")
_CITIES = ("上海", "北京", "深圳", "杭州", "成都", "Wuhan", "Xi'an", "广州", "南京", "重庆")
_ITEMS = (
    "手机壳", "保温杯", "礼品卡", "蓝牙耳机", "运动鞋", "台灯", "充电宝", "数据线", "茶叶", "咖啡豆",
    "gift card", "USB cable", "running shoes", "desk lamp", "phone case", "coffee beans", "backpack",
)  # fmt: skip
_NOTES = (
    "", "", "", "请尽快发货", "周末送达", "急用", "放门口", "please deliver after 6pm", "gift wrap",
    "call before delivery", "送给朋友的礼物", "发票抬头公司",
)  # fmt: skip


def order(rng: random.Random) -> tuple[str, str]:
    """One serialized order (the audit template's fields) and its approve/reject label."""
    prior = rng.choice((0, 0, 1, 2, 3, 5, 8, 12, 20, 35))
    prior_mean = rng.uniform(40, 600) if prior else 300.0
    ratio = math.exp(rng.gauss(0.0, 0.9))
    amount = prior_mean * ratio
    age = int(rng.expovariate(1 / 300))
    new_account = age < 30
    address_match = rng.random() > 0.12
    velocity = 1 + int(rng.expovariate(0.9))
    names = rng.sample(_ITEMS, rng.randint(1, 3))
    items = ", ".join(f"{n} x{rng.randint(1, 4)}" if rng.random() < 0.4 else n for n in names)
    gift = any("礼品卡" in n or "gift" in n for n in names)
    text = (
        f"{amount:.2f} CNY | {rng.choice(_CHANNELS)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} | "
        f"{rng.choice(_CITIES)} | 历史 {prior} 单 "
        f"均额 {prior_mean:.2f} | 倍数 {ratio:.1f} | 账龄 {age} 天 | "
        f"地址{'一致' if address_match else '不一致'} | 24h {velocity} 单 | "
        f"商品: {items} | 备注: {rng.choice(_NOTES)}"
    )
    risk = (
        1.2 * (ratio > 3.0)
        + 1.0 * new_account
        + 1.1 * (not address_match)
        + 0.6 * (velocity >= 3)
        + 0.8 * (gift and new_account)
        + rng.gauss(0.0, 0.35)
    )
    return text, "reject" if risk > 1.0 else "approve"


def orders(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    pairs = [order(rng) for _ in range(n)]
    return [t for t, _ in pairs], [label for _, label in pairs]


# ---------------------------------------------------------------------- model


def build_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=PAD, model_max_length=256
    )


def build_model(tokenizer: PreTrainedTokenizerFast) -> GPT2ForSequenceClassification:
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=6,
        n_embd=384,
        n_head=6,
        n_positions=256,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
    )
    return GPT2ForSequenceClassification(config)


def encode_batch(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, truncation=True, max_length=256, add_special_tokens=False, padding=True)
    return {k: torch.tensor(v) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def quick_train(
    model: GPT2ForSequenceClassification,
    tokenizer: PreTrainedTokenizerFast,
    texts: list[str],
    labels: list[str],
    steps: int,
) -> float:
    """A few AdamW steps so the classifier's answers are decisive; returns the last loss.

    bf16 autocast where the CPU has native bf16; elsewhere it is emulated, hundreds of times slower.
    """
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    rng = random.Random(1)
    target_of = {name: i for i, name in enumerate(LABELS)}
    loss = torch.tensor(0.0)
    for _ in range(steps):
        idx = rng.sample(range(len(texts)), 32)
        batch = encode_batch(tokenizer, [texts[i] for i in idx])
        target = torch.tensor([target_of[labels[i]] for i in idx])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bf16()):
            logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.detach())


def fp32_unbatched(
    model: GPT2ForSequenceClassification, tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> torch.Tensor:
    """The reference answers: fp32, one text per forward pass, no padding."""
    out = []
    with torch.inference_mode():
        for text in texts:
            batch = encode_batch(tokenizer, [text])
            out.append(torch.softmax(model(**batch).logits.float(), -1)[0])
    return torch.stack(out)


# ---------------------------------------------------------------------- measurement


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 3) -> float:
    """Best FLOP/s of an n×n matmul in ``dtype``.

    Emulated bf16 (no avx512_bf16 or AMX) runs near 1 GFLOP/s: measured on 512² so that it takes
    a second, not ten minutes.
    """
    if dtype == torch.bfloat16 and not native_bf16():
        n = 512
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    cpu_seconds: float = 0.0  # CPU time the whole process used in the measured window

    @property
    def per_cpu_second(self) -> float:
        """Requests per CPU-second: less sensitive than req/s to other work on a shared machine."""
        return self.requests / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(q / 100 * len(values)))]


def closed_loop(
    call: Callable[[str], Any], texts: list[str], clients: int, seconds: float, warmup: float
) -> Result:
    """``clients`` threads each sending the next request as soon as the last one is answered.

    Throughput counts the answers that arrive inside the measured window; latency is taken from the
    requests sent inside it (each client finishes its last request after the window closes).
    """
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    spans: list[list[tuple[float, float]]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(k: int) -> None:
        i = k * 7919
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                call(texts[i % len(texts)])
            except Exception:
                errors[k] += 1
            spans[k].append((t0, time.perf_counter()))
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu0 = time.process_time()
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    cpu = time.process_time() - cpu0
    for t in threads:
        t.join()
    flat = [span for row in spans for span in row]
    answered = sum(1 for _, t1 in flat if measure_from <= t1 < stop_at)
    latencies = [(t1 - t0) * 1000 for t0, t1 in flat if t0 >= measure_from]
    return Result(answered, seconds, latencies, sum(errors), cpu)


def open_loop(call: Callable[[str], Any], texts: list[str], rate: float, seconds: float) -> Result:
    """Poisson arrivals at ``rate``/s; latency counts from the scheduled arrival (queueing included)."""
    rng = random.Random(5)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def one(text: str, due: float) -> None:
        try:
            call(text)
        except Exception:
            with lock:
                errors[0] += 1
            return
        done = time.perf_counter()
        with lock:
            latencies.append((done - due) * 1000)

    with ThreadPoolExecutor(max_workers=256) as pool:
        begin = time.perf_counter() + 0.05
        due = begin
        i = 0
        while due < begin + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, texts[i % len(texts)], due)
            i += 1
            due += rng.expovariate(rate)
    return Result(len(latencies), seconds, latencies, errors[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per level and system")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--sample", type=int, default=256, help="held-out texts for the precision checks")
    parser.add_argument("--quantize", action="store_true", help="let the runtime try dynamic int8")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, help="runtime forward workers (default: one per CPU)")
    parser.add_argument("--runtime-threads", type=int, help="torch threads per runtime pass")
    parser.add_argument(
        "--compare-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="also measure a runtime with this many single-threaded workers (0: skip)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--work", type=Path, help="keep the trained model here and reuse it next time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("gpt2_agent.serving").setLevel(logging.INFO)
    threads = torch.get_num_threads()
    t_start = time.perf_counter()

    peak_fp32, peak_bf16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    if not native_bf16():
        print("this CPU has no native bf16: bf16 is emulated, and the runtime serves fp32")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(
        f"threads {threads}; matmul peak fp32 {peak_fp32 / 1e9:.0f} GFLOP/s, "
        f"bf16 {peak_bf16 / 1e9:.0f} GFLOP/s"
    )

    texts, labels = orders(6000, seed=0)
    tokenizer = build_tokenizer(texts, vocab_size=2048)
    eval_texts, eval_labels = orders(args.sample, seed=1)
    bench_texts, _ = orders(2000, seed=2)
    tokens = [len(x) for x in tokenizer(bench_texts, add_special_tokens=False)["input_ids"]]
    mean_tokens = statistics.mean(tokens)
    cached = args.work / f"model-{args.train_steps}" if args.work else None
    if cached is not None and (cached / "config.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(cached))
        model = GPT2ForSequenceClassification.from_pretrained(str(cached)).eval()
        print(f"texts: {mean_tokens:.1f} tokens on average; model reused from {cached}")
    else:
        model = build_model(tokenizer)
        t0 = time.perf_counter()
        loss = quick_train(model, tokenizer, texts, labels, args.train_steps)
        print(
            f"texts: {mean_tokens:.1f} tokens on average (min {min(tokens)}, max {max(tokens)}); "
            f"trained {args.train_steps} steps in {time.perf_counter() - t0:.0f} s, last loss {loss:.3f}"
        )
        if cached is not None:
            model.save_pretrained(cached)
            tokenizer.save_pretrained(cached)
    blocks = sum(p.numel() for p in model.transformer.h.parameters())
    d, n_layer = model.config.n_embd, model.config.n_layer
    flops_per_request = 2 * blocks * mean_tokens + 4 * n_layer * mean_tokens**2 * d

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = load_settings(home=home / "home", database_url=f"sqlite:///{home / 'bench.db'}")
        db = create_database(settings.database_url)
        upgrade(db)
        registry = Registry(settings, db)
        folder = home / "model"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        version = registry.register(folder, MODEL, created_by="bench").version
        registry.promote(MODEL, version, by="bench", force=True)

        reference = fp32_unbatched(model, tokenizer, eval_texts)
        runtime = ServingRuntime(
            settings,
            registry,
            max_batch_size=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            quantize=args.quantize,
            dtype=args.dtype,
            check_samples={MODEL: CheckSample.of(eval_texts, eval_labels)},
            workers=args.workers,
            threads=args.runtime_threads,
        )
        t0 = time.perf_counter()
        runtime.predict_one(MODEL, bench_texts[0])
        info = runtime.info(MODEL)
        print(
            f"runtime ready in {time.perf_counter() - t0:.1f} s: {info['workers']} workers × "
            f"{info['threads']} threads, {info['precision']} ({info['precision_info']})"
        )

        # Agreement with fp32 unbatched answers, with the held-out texts sent concurrently (batched).
        with ThreadPoolExecutor(max_workers=32) as pool:
            served = list(pool.map(lambda t: runtime.predict_one(MODEL, t), eval_texts))
        ours = torch.tensor([[p.scores[x] for x in LABELS] for p in served])
        agreement = float((ours.argmax(-1) == reference.argmax(-1)).float().mean())
        max_diff = float((ours - reference).abs().max())
        target = torch.tensor([LABELS.index(x) for x in eval_labels])
        acc_ref = float((reference.argmax(-1) == target).float().mean())
        acc_ours = float((ours.argmax(-1) == target).float().mean())
        print(
            f"agreement with fp32 unbatched on {len(eval_texts)} held-out texts: {agreement:.4f} "
            f"(max |Δp| {max_diff:.4f}); accuracy fp32 {acc_ref:.4f}, runtime {acc_ours:.4f}"
        )

        pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
        systems: dict[str, tuple[Callable[[str], Any], int]] = {
            "baseline": (lambda text: pipe(text), threads),  # torch's default threads, as the seed ran
            "runtime": (lambda text: runtime.predict_one(MODEL, text), runtime.threads),
        }
        variant = None
        if args.compare_workers and args.compare_workers != runtime.workers:
            variant = ServingRuntime(
                settings,
                registry,
                max_batch_size=args.max_batch,
                max_wait_ms=args.max_wait_ms,
                dtype=info["precision"] if info["precision"] != "int8" else "fp32",
                workers=args.compare_workers,
                threads=1,
            )
            variant.predict_one(MODEL, bench_texts[0])
            systems[f"runtime {args.compare_workers}w"] = (lambda text: variant.predict_one(MODEL, text), 1)

        # torch's thread count is process-wide: each system runs with its own setting.
        rows: list[dict[str, Any]] = []
        for clients in CONCURRENCY:
            row: dict[str, Any] = {"clients": clients}
            for name, (call, n_threads) in systems.items():
                torch.set_num_threads(n_threads)
                row[name] = closed_loop(call, bench_texts, clients, args.duration, args.warmup)
            rows.append(row)
            print(
                f"  c={clients:>2}: "
                + ", ".join(
                    f"{name} {row[name].rps:6.1f} req/s (errors {row[name].errors})" for name in systems
                ),
                flush=True,
            )
        half: dict[str, tuple[float, Result]] = {}
        for name, (call, n_threads) in systems.items():
            torch.set_num_threads(n_threads)
            rate = max(r[name].rps for r in rows) / 2
            half[name] = (rate, open_loop(call, bench_texts, rate, args.duration * 1.5))
        stats = runtime.info(MODEL)["batching"]
        runtime.close()
        if variant is not None:
            variant.close()
        db.dispose()

    print_table(rows, list(systems), flops_per_request, peak_fp32, peak_bf16)
    print("\nopen loop (Poisson arrivals) at half of each system's best closed-loop throughput:")
    for name, (rate, res) in half.items():
        print(
            f"  {name:<12} {rate:6.1f} req/s offered → {res.rps:6.1f} answered, p50 {res.pct(50):7.1f} ms, "
            f"p99 {res.pct(99):7.1f} ms (errors {res.errors})"
        )
    c32 = next(r for r in rows if r["clients"] == 32)
    ratio32 = c32["runtime"].rps / c32["baseline"].rps if c32["baseline"].rps > 0 else math.nan
    p99_half = half["runtime"][1].pct(99)
    print(
        f"batching (runtime): {stats['mean_pass_size']:.1f} texts per forward pass, padding efficiency "
        f"{stats['padding_efficiency']:.3f}, {stats['forward_passes']} passes"
    )
    print(f"target ≥ 3× baseline at c=32: ×{ratio32:.2f} {'PASS' if ratio32 >= 3 else 'FAIL'}")
    print(f"target p99 ≤ 100 ms at half peak: {p99_half:.1f} ms {'PASS' if p99_half <= 100 else 'FAIL'}")
    print(
        f"target predictions unchanged (agreement ≥ 0.99): {agreement:.4f} "
        f"{'PASS' if agreement >= 0.99 else 'FAIL'}"
    )
    print(
        f"total bench time {time.perf_counter() - t_start:.0f} s; load average at end: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    if args.json:
        payload = {
            "threads": threads,
            "peak_gflops": {"fp32": peak_fp32 / 1e9, "bf16": peak_bf16 / 1e9},
            "mean_tokens": mean_tokens,
            "gflop_per_request": flops_per_request / 1e9,
            "precision": info["precision"],
            "precision_info": info["precision_info"],
            "agreement": agreement,
            "accuracy": {"fp32": acc_ref, "runtime": acc_ours},
            "levels": [
                {
                    "clients": r["clients"],
                    **{
                        name: {
                            "rps": r[name].rps,
                            "p50_ms": r[name].pct(50),
                            "p99_ms": r[name].pct(99),
                            "errors": r[name].errors,
                            "per_cpu_second": r[name].per_cpu_second,
                        }
                        for name in systems
                    },
                }
                for r in rows
            ],
            "half_peak": {
                name: {"rate": rate, "p50_ms": res.pct(50), "p99_ms": res.pct(99), "errors": res.errors}
                for name, (rate, res) in half.items()
            },
            "batching": stats,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base > 0 else "n/a"


def print_table(
    rows: list[dict[str, Any]], systems: list[str], flops: float, peak_fp32: float, peak_bf16: float
) -> None:
    header = (
        f"\n{'clients':>7} | {'system':<12} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'×base':>6} | "
        f"{'GFLOP/s':>7} | {'%fp32pk':>7} | {'%bf16pk':>7} | {'req/CPU-s':>9}"
    )
    print(header)
    print("-" * (len(header) - 1))
    for r in rows:
        base_rps = r["baseline"].rps
        for name in systems:
            res: Result = r[name]
            achieved = res.rps * flops
            # Against an emulated bf16 "peak" the share means nothing: the runtime serves fp32 there.
            bf16_share = f"{100 * achieved / peak_bf16:6.1f}%" if native_bf16() else "n/a"
            print(
                f"{r['clients']:>7} | {name:<12} | {res.rps:7.1f} | {res.pct(50):7.1f} | "
                f"{res.pct(99):7.1f} | {_ratio(res.rps, base_rps):>6} | {achieved / 1e9:7.1f} | "
                f"{100 * achieved / peak_fp32:6.1f}% | {bf16_share:>7} | "
                f"{res.per_cpu_second:9.1f}"
            )


if __name__ == "__main__":
    main()
