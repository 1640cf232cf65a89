"""Scale-out benchmark: the engine on PostgreSQL with the local executor and with 1, 2 and 4 Celery
workers; and DDP training with 2 processes against 1 (``--ddp``, ``--ddp-only``).

Workload: a 3-step workflow of trivial steps (``bench/scale_plugin.py``; each step records when
its handler was entered). For each configuration, on a fresh PostgreSQL schema:

* **sequential**: runs one at a time. "first step" is submit → first handler entered (commit,
  publish, broker, claim); "next step" is handler entered → the next step's handler entered
  (complete + advance + claim in one transaction; a Celery worker keeps a run's next step
  without a broker round trip). The difference to the local executor is the transport's
  per-step overhead.
* **burst**: ``--runs`` runs submitted at once; runs/s from the first submission to the last
  run finished, and step latency p50/p99 (a step queued → finished, from the database
  timestamps), which includes the wait in the queue.

A Celery "worker" here is one ``gpt2-agent worker --concurrency 1`` node (one process that runs
steps, plus Celery's supervisor); the local executor uses ``--local-threads`` threads in the
benchmark process. The broker is Redis (``--broker``).

    .venv/bin/python bench/scale.py [--runs 300] [--sequential 30] [--workers 1,2,4]
                                    [--pg URL] [--broker URL] [--no-local] [--ddp]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the plugin is imported as ``bench.scale_plugin``

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import bindparam, create_engine, select, text  # noqa: E402

from gpt2_agent.api.app import build_engine  # noqa: E402
from gpt2_agent.config import load_settings  # noqa: E402
from gpt2_agent.engine.core import Engine  # noqa: E402
from gpt2_agent.engine.executors.base import Executor  # noqa: E402
from gpt2_agent.engine.executors.celery import CeleryExecutor  # noqa: E402
from gpt2_agent.engine.executors.local import LocalExecutor  # noqa: E402
from gpt2_agent.store.engine_tables import Task  # noqa: E402

PLUGIN = "bench.scale_plugin"
WORKFLOW = "bench-scale-three"
console = Console(width=150)


@dataclass
class Result:
    name: str
    first_ms: list[float]
    next_ms: list[float]
    runs_per_s: float
    step_latency_ms: list[float]

    @property
    def steps_per_s(self) -> float:
        return self.runs_per_s * 3


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextmanager
def pg_schema(pg: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{pg}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def wait_runs(engine: Engine, ids: list[int], timeout: float = 600.0) -> None:
    """Poll gently: a tight loop would steal CPU from the workers being measured."""
    pending = set(ids)
    stmt = text(
        "SELECT id FROM workflow_runs WHERE status IN ('succeeded', 'failed') AND id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    deadline = time.monotonic() + timeout
    while pending:
        with engine.db.session() as s:
            pending -= {r for (r,) in s.execute(stmt, {"ids": list(pending)})}
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} runs did not finish")
            time.sleep(0.02)


def measure(name: str, engine: Engine, sequential: int, runs: int) -> Result:
    wait_runs(engine, [engine.start_run(WORKFLOW, {}).id for _ in range(10)])  # warm-up

    first: list[float] = []
    nxt: list[float] = []
    for _ in range(sequential):
        t0 = time.time()
        run_id = engine.start_run(WORKFLOW, {}).id
        wait_runs(engine, [run_id])
        out = engine.get_run(run_id).output or {}
        first.append((out["a"] - t0) * 1000)
        nxt += [(out["b"] - out["a"]) * 1000, (out["c"] - out["b"]) * 1000]

    t0 = time.perf_counter()
    ids = [engine.start_run(WORKFLOW, {}).id for _ in range(runs)]
    wait_runs(engine, ids)
    elapsed = time.perf_counter() - t0
    with engine.db.session() as s:
        rows = s.execute(select(Task.run_at, Task.finished_at).where(Task.run_id.in_(ids))).all()
    latency = [(done - queued).total_seconds() * 1000 for queued, done in rows if done is not None]
    return Result(name, first, nxt, runs / elapsed, latency)


def bench_local(pg: str, home: Path, threads: int, sequential: int, runs: int) -> Result:
    with pg_schema(pg) as url:
        settings = load_settings(
            home=home,
            database_url=url,
            plugins=[PLUGIN],
            executor_concurrency=threads,
            poll_interval_seconds=0.5,
        )
        engine, _ = build_engine(settings)
        executor: Executor = LocalExecutor(engine)
        executor.start()
        try:
            return measure(f"local ({threads} threads)", engine, sequential, runs)
        finally:
            executor.stop()
            engine.db.dispose()


def bench_celery(pg: str, broker: str, home: Path, workers: int, sequential: int, runs: int) -> Result:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    home.mkdir(parents=True, exist_ok=True)
    with pg_schema(pg) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPT2_AGENT_")}
        env.update(
            GPT2_AGENT_HOME=str(home),
            GPT2_AGENT_DATABASE_URL=url,
            GPT2_AGENT_EXECUTOR="celery",
            GPT2_AGENT_BROKER_URL=broker,
            GPT2_AGENT_BROKER_QUEUE_PREFIX=prefix,
            GPT2_AGENT_PLUGINS=f'["{PLUGIN}"]',
            PYTHONPATH=str(ROOT),
        )
        settings = load_settings(
            home=home,
            database_url=url,
            plugins=[PLUGIN],
            executor="celery",
            broker_url=broker,
            broker_queue_prefix=prefix,
        )
        engine, _ = build_engine(settings)  # migrates before the workers start
        logs = [home / f"worker{i}.log" for i in range(workers)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gpt2_agent.cli.worker",
                    "-c",
                    "1",
                    "-l",
                    "info",
                    "-n",
                    f"b{i}-{prefix}@%h",
                ],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for i, log in enumerate(logs)
        ]
        publisher = CeleryExecutor(engine)
        publisher.start()
        try:
            try:
                _wait_for(lambda: all("worker process ready" in log.read_text() for log in logs), 180)
            except TimeoutError:
                raise TimeoutError(f"workers did not start: {logs[0].read_text()[-2000:]}") from None
            return measure(f"celery x{workers}", engine, sequential, runs)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
            publisher.stop()
            engine.db.dispose()


def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not start")
        time.sleep(0.2)


# === DDP: 2 processes against 1, in tokens/s ================================================
# The same small GPT-2 language model, the same tokens (global batch 16 = 1 × 16 or 2 × 8) and the
# same number of steps, trained by ``gpt2-agent train --nproc N`` (torchrun, gloo on CPU). Each
# process uses one thread, so N processes use N cores.
DDP_MODEL = ["model.n_layer=4", "model.n_embd=256", "model.n_head=4", "model.context=128"]


def ddp_tokens_per_second(steps: int = 60, orders: int = 3000) -> list[tuple[str, float, float]]:
    """(configuration, tokens/s, held-out loss) for 1 process and for 2."""
    import json
    import os
    import tempfile

    from gpt2_agent.demo import generate_warehouse

    config = ROOT / "configs" / "lm-pretrain.tiny.toml"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        generate_warehouse(f"sqlite:///{home / 'warehouse.db'}", orders=orders, seed=0)
        env = {**os.environ, "GPT2_AGENT_HOME": str(home)}
        for nproc in (1, 2):
            out = Path(tmp) / f"run-{nproc}"
            overrides = [
                *DDP_MODEL,
                f"train.batch_size={16 // nproc}",
                f"train.max_steps={steps}",
                "train.lr=1e-3",  # the config's 3e-3 is unstable at this width: runs diverge at random
                "model.dropout=0.0",
                "train.eval_every=100000",
                "train.checkpoint_every=100000",
                "eval.plots=false",
                f'output_dir="{out}"',
            ]
            cmd = [sys.executable, "-m", "gpt2_agent.cli.main", "train", str(config), "--nproc", str(nproc)]
            cmd += ["--fresh", "--no-progress", *[f"--set={o}" for o in overrides]]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            metrics = json.loads((out / "model" / "metrics.json").read_text(encoding="utf-8"))
            rows.append(
                (
                    f"{nproc} process{'es' if nproc > 1 else ''}",
                    metrics["train"]["tokens_per_s"],
                    metrics["loss"],
                )
            )
    return rows


# =============================================================================================


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300, help="runs in the burst (throughput)")
    parser.add_argument("--sequential", type=int, default=30, help="one-at-a-time runs (per-step overhead)")
    parser.add_argument("--workers", default="1,2,4", help="Celery worker counts to measure")
    parser.add_argument("--local-threads", type=int, default=4)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-local", action="store_true")
    parser.add_argument("--ddp", action="store_true", help="also run the DDP measurement (training part)")
    parser.add_argument("--ddp-only", action="store_true", help="only the DDP measurement")
    args = parser.parse_args()
    if args.ddp_only:
        ddp_table(console)
        return

    console.print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, Python {platform.python_version()}"
    )
    results: list[Result] = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_local:
            results.append(
                bench_local(args.pg, Path(tmp) / "local", args.local_threads, args.sequential, args.runs)
            )
            console.print(f"done: {results[-1].name}")
        for n in (int(x) for x in args.workers.split(",") if x):
            results.append(
                bench_celery(args.pg, args.broker, Path(tmp) / f"c{n}", n, args.sequential, args.runs)
            )
            console.print(f"done: {results[-1].name}")

    table = Table(title=f"3-step workflow of trivial steps on PostgreSQL ({args.runs}-run burst)")
    for col in (
        "executor",
        "runs/s",
        "steps/s",
        "step latency p50 (ms)",
        "p99 (ms)",
        "first step p50 / p99 (ms)",
        "next step p50 / p99 (ms)",
    ):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.name,
            f"{r.runs_per_s:.1f}",
            f"{r.steps_per_s:.1f}",
            f"{pct(r.step_latency_ms, 0.5):.0f}",
            f"{pct(r.step_latency_ms, 0.99):.0f}",
            f"{statistics.median(r.first_ms):.1f} / {pct(r.first_ms, 0.99):.1f}",
            f"{statistics.median(r.next_ms):.1f} / {pct(r.next_ms, 0.99):.1f}",
        )
    console.print(table)
    local = next((r for r in results if r.name.startswith("local")), None)
    med = statistics.median
    if local is not None:
        for r in results:
            if r is local:
                continue
            console.print(
                f"{r.name}: first step {med(r.first_ms) - med(local.first_ms):+.1f} ms, next step "
                f"{med(r.next_ms) - med(local.next_ms):+.1f} ms against the local executor (median, "
                f"sequential); throughput {r.runs_per_s / local.runs_per_s:.2f}x"
            )
    celery = [r for r in results if r.name.startswith("celery")]
    for before, after in itertools.pairwise(celery):
        console.print(f"{before.name} -> {after.name}: runs/s x{after.runs_per_s / before.runs_per_s:.2f}")

    if args.ddp:
        ddp_table(console)


def ddp_table(console: Console) -> None:
    """Measure and print DDP 2 processes against 1."""
    rows = ddp_tokens_per_second()
    ddp = Table("configuration", "tokens/s", "× 1 process", "held-out loss", title="DDP training, CPU (gloo)")
    for name, tps, loss in rows:
        ddp.add_row(name, f"{tps:.0f}", f"{tps / rows[0][1]:.2f}", f"{loss:.4f}")
    console.print(ddp)


if __name__ == "__main__":
    main()
