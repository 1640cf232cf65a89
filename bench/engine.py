"""Engine benchmark: workflow runs per second and per-step engine overhead.

A 3-step workflow of trivial steps runs on the local executor, on SQLite and on PostgreSQL.
Per-step overhead is the gap between one step's handler returning and the next step's
handler starting (complete + advance + claim, all committed), plus submission-to-first-step.
Baseline in the same run: one bare INSERT + COMMIT on the same database (the durability floor).

    .venv/bin/python bench/engine.py [--runs 200] [--sequential 100] [--pg URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from sqlalchemy import bindparam, create_engine, text

from gpt2_agent.config import load_settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors.local import LocalExecutor
from gpt2_agent.engine.handlers import TaskContext, TaskType
from gpt2_agent.engine.workflows import parse_workflow
from gpt2_agent.store import create_database, upgrade

WORKFLOW = """
name: bench-three
steps:
  - {name: a, uses: bench.noop}
  - {name: b, uses: bench.noop}
  - {name: c, uses: bench.noop}
"""


class Empty(BaseModel):
    pass


class Timeline:
    """Handler entry/exit times per (run, step)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_step_done = threading.Event()
        self.enter: dict[tuple[int, str], float] = {}
        self.exit: dict[tuple[int, str], float] = {}

    def handler(self, ctx: TaskContext, _: Empty) -> Empty:
        key = (ctx.run_id or 0, ctx.step_name or "")
        now = time.perf_counter()
        with self.lock:
            self.enter[key] = now
            self.exit[key] = time.perf_counter()
        if key[1] == "c":
            self.last_step_done.set()
        return Empty()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench(url: str, home: Path, sequential: int, runs: int, concurrency: int) -> dict[str, float]:
    settings = load_settings(
        home=home, database_url=url, executor_concurrency=concurrency, poll_interval_seconds=0.5
    )
    db = create_database(url)
    upgrade(db)
    engine = Engine(db, settings)
    timeline = Timeline()
    engine.handlers.register(TaskType("bench.noop", Empty, Empty, timeline.handler))
    engine.workflows.register(parse_workflow(WORKFLOW))
    executor = LocalExecutor(engine)
    executor.start()

    def wait(ids: list[int]) -> None:
        # Poll gently: a tight polling loop would steal the GIL from the workers being measured.
        pending = set(ids)
        while pending:
            with db.session() as s:
                done = {
                    r
                    for (r,) in s.execute(
                        text(
                            "SELECT id FROM workflow_runs WHERE status = 'succeeded' AND id IN :ids"
                        ).bindparams(bindparam("ids", expanding=True)),
                        {"ids": list(pending)},
                    )
                }
            pending -= done
            if pending:
                time.sleep(0.02)

    # Warm-up.
    wait([engine.start_run("bench-three", {}).id for _ in range(5)])

    # Sequential runs: per-step overhead.
    gaps: list[float] = []
    for _ in range(sequential):
        t0 = time.perf_counter()
        timeline.last_step_done.clear()
        run_id = engine.start_run("bench-three", {}).id
        timeline.last_step_done.wait(30)
        wait([run_id])
        gaps.append(timeline.enter[(run_id, "a")] - t0)
        gaps.append(timeline.enter[(run_id, "b")] - timeline.exit[(run_id, "a")])
        gaps.append(timeline.enter[(run_id, "c")] - timeline.exit[(run_id, "b")])

    # Throughput: many runs at once.
    t0 = time.perf_counter()
    ids = [engine.start_run("bench-three", {}).id for _ in range(runs)]
    wait(ids)
    elapsed = time.perf_counter() - t0
    executor.stop()

    # Baseline: a bare durable write on the same database.
    floor: list[float] = []
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (v TEXT)"))
    for i in range(200):
        t = time.perf_counter()
        with db.write_session() as s:
            s.execute(text("INSERT INTO bench_floor (v) VALUES (:v)"), {"v": str(i)})
        floor.append(time.perf_counter() - t)
    db.dispose()
    return {
        "median_ms": statistics.median(gaps) * 1000,
        "p99_ms": percentile(gaps, 0.99) * 1000,
        "runs_per_s": runs / elapsed,
        "floor_ms": statistics.median(floor) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="runs for the throughput measurement")
    parser.add_argument("--sequential", type=int, default=100, help="one-at-a-time runs for overhead")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        results["SQLite (WAL, synchronous=NORMAL)"] = bench(
            f"sqlite:///{home / 'bench.db'}", home / "a", args.sequential, args.runs, args.concurrency
        )
        if not args.no_pg:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                url = f"{args.pg}?options=-csearch_path%3D{schema}"
                results["PostgreSQL"] = bench(url, home / "b", args.sequential, args.runs, args.concurrency)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))

    table = Table(title="Engine: 3-step workflow of trivial steps, local executor")
    for col in (
        "database",
        "step overhead median (ms)",
        "p99 (ms)",
        "runs/s",
        "bare commit (ms)",
        "overhead / commit",
    ):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['median_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['runs_per_s']:.1f}",
            f"{r['floor_ms']:.2f}",
            f"{r['median_ms'] / r['floor_ms']:.1f}x",
        )
    Console().print(table)
    sqlite = results["SQLite (WAL, synchronous=NORMAL)"]
    verdict = "meets" if sqlite["median_ms"] <= 2.0 else "misses"
    Console().print(
        f"Target: median step overhead <= 2 ms on SQLite -> {verdict} ({sqlite['median_ms']:.2f} ms)"
    )


if __name__ == "__main__":
    main()
