"""Tokenize-and-shard throughput and memory on synthetic corpora of growing size.

A synthetic corpus (mixed Chinese and English business text, one document per line) of each
size is generated into a temporary folder; a byte-level BPE tokenizer is trained once on the
first few MB; then each corpus is streamed through ``write_shards`` in its own subprocess, so
its peak RSS is its own. Memory must not grow with the corpus: the writer holds one shard
buffer and one batch of texts, whatever the size. The block stream's read rate is reported too.

    .venv/bin/python bench/shards.py                  # 100 MB and 1 GB
    .venv/bin/python bench/shards.py --sizes 20,100   # quicker
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS_EN = [
    "order",
    "payment",
    "refund",
    "invoice",
    "customer",
    "shipped",
    "delivered",
    "address",
    "card",
    "expired",
    "balance",
    "audit",
    "approve",
    "reject",
    "please",
    "urgent",
    "receipt",
    "upload",
    "email",
    "amount",
    "total",
    "discount",
    "coupon",
    "warehouse",
    "return",
    "exchange",
    "the",
    "a",
    "of",
    "to",
    "and",
    "for",
    "with",
    "on",
    "is",
    "was",
    "my",
    "your",
    "this",
    "that",
    "we",
    "you",
    "it",
]
WORDS_ZH = list(
    "订单支付退款发票客户已发货送达地址银行卡过期余额审核通过拒绝请尽快收据上传邮件金额总计优惠券仓库退货换货的了是我你这那们"
)


def _sentence(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(3, 15)):
        if rng.random() < 0.5:
            parts.append(rng.choice(WORDS_EN))
        else:
            parts.append("".join(rng.choices(WORDS_ZH, k=rng.randint(1, 4))))
        if rng.random() < 0.1:
            parts.append(f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}")
    return " ".join(parts)


def make_corpus(path: Path, size_mb: int, seed: int = 0) -> None:
    """Write about ``size_mb`` MB of lines, each a short mixed-language document.

    Each document joins two sentences from a pool of 20,000, so words recur as in real text
    while documents rarely repeat; generating stays far faster than tokenizing.
    """
    rng = random.Random(seed)
    pool = [_sentence(rng) for _ in range(20_000)]
    target = size_mb * 1_000_000
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            picks = rng.choices(pool, k=20_000)
            chunk = "\n".join(f"{a} {b}" for a, b in zip(picks[::2], picks[1::2], strict=True)) + "\n"
            fh.write(chunk)
            written += len(chunk.encode("utf-8"))


def lines(path: Path, limit_bytes: int | None = None):  # type: ignore[no-untyped-def]
    seen = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            seen += len(line)
            if limit_bytes is not None and seen > limit_bytes:
                return
            yield line.rstrip("\n")


def worker(corpus: Path, tokenizer_dir: Path, out: Path, block: int) -> None:
    from gpt2_agent.training.shards import BlockStream, write_shards
    from gpt2_agent.training.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    size = corpus.stat().st_size
    start = time.perf_counter()
    index = write_shards(lines(corpus), tok, out)
    seconds = time.perf_counter() - start
    rss_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stream = BlockStream(out, block_size=block, seed=0, buffer_size=1024)
    start = time.perf_counter()
    n = 0
    for _ in stream:  # one shuffled pass over the blocks, touching every token
        n += 1
        if n >= 200_000:
            break
    read_seconds = time.perf_counter() - start
    print(
        "RESULT "
        + json.dumps(
            {
                "mb": size / 1e6,
                "seconds": seconds,
                "mb_per_s": size / 1e6 / seconds,
                "tokens": index.n_tokens,
                "tokens_per_s": index.n_tokens / seconds,
                "documents": index.n_documents,
                "shards": len(index.shards),
                "peak_rss_mb_write": rss_write,
                "blocks_per_s": n / read_seconds,
                "peak_rss_mb_total": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000", help="corpus sizes in MB")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), Path(args.worker[1]), Path(args.worker[2]), args.block)
        return

    from gpt2_agent.training.tokenizer import train_tokenizer

    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        root = Path(tmp)
        sizes = [int(s) for s in args.sizes.split(",")]
        sample = root / "sample.txt"
        make_corpus(sample, 5, seed=99)
        start = time.perf_counter()
        train_tokenizer(lines(sample), vocab_size=args.vocab, out_dir=root / "tok")
        print(
            f"tokenizer: byte-level BPE, {args.vocab} tokens, "
            f"trained on 5 MB in {time.perf_counter() - start:.1f}s"
        )
        rows = []
        for size in sizes:
            corpus = root / f"corpus-{size}.txt"
            start = time.perf_counter()
            make_corpus(corpus, size)
            print(f"generated {size} MB corpus in {time.perf_counter() - start:.0f}s", flush=True)
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                str(corpus),
                str(root / "tok"),
                str(root / f"shards-{size}"),
            ]
            cmd += ["--block", str(args.block)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(f"{size} MB failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(line[len("RESULT ") :]))
            corpus.unlink()
            shutil.rmtree(root / f"shards-{size}", ignore_errors=True)
        print()
        header = (
            f"{'corpus':>8s} {'MB/s':>6s} {'tokens/s':>10s} {'tokens':>12s} {'docs':>10s} {'shards':>6s} "
            f"{'RSS write':>10s} {'blocks/s':>9s} {'RSS total':>10s}"
        )
        print(header)
        print("-" * len(header))
        for r in rows:
            print(
                f"{r['mb']:6.0f}MB {r['mb_per_s']:6.1f} {r['tokens_per_s']:10.0f} {r['tokens']:12d} "
                f"{r['documents']:10d} {r['shards']:6d} {r['peak_rss_mb_write']:8.0f}MB "
                f"{r['blocks_per_s']:9.0f} "
                f"{r['peak_rss_mb_total']:8.0f}MB"
            )


if __name__ == "__main__":
    main()
