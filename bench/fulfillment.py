"""End-to-end ``order-fulfillment`` runs per second on the product's own components.

Each run is the shipped workflow: audit (the audit model's forward passes, occlusion reasons
included) → gate → review where the gate escalates → payment (sandbox gateway on the warehouse)
→ notice → mail (SMTP to an aiosmtpd sink on 127.0.0.1) → receipt → outcome. The components are
the server's (``build_components``: engine, serving runtime, gate, actions); only HTTP is left out.

Baseline: one order at a time, as a clerk works today. Against it, K orders in flight (a closed
loop: a finished run is replaced at once), where the executor's threads run steps side by side and
the serving runtime batches their forward passes. A reviewer thread decides every escalated order
as soon as it appears (it follows the model's recommendation), so the numbers measure the machine,
not a person's think time; the table says what share of the runs went through review.

After each level the benchmark checks what must hold: every run ended, no order charged twice
(application ledger), the gateway's ledger in the warehouse matches the paid runs, and one mail
went out per run (a reviewer's rejection ends a run without one).

The model is the real size (``configs/order-audit.toml``: 6 layers, width 384), trained briefly
on a demo warehouse (its quality matters only through the share of orders the gate escalates).
Models trained by the pipeline carry a held-out sample, so the runtime serves bf16 where the CPU
has it natively and bf16 agrees with fp32 (the "model" column).

    .venv/bin/python -u bench/fulfillment.py [--levels 1,8,32] [--runs 240] [--sequential 40]
                                             [--train-steps 400] [--pg URL] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``bench.scale`` for the PostgreSQL schema helper

from aiosmtpd.controller import Controller  # noqa: E402
from bench.scale import pg_schema  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import bindparam, create_engine, select, text  # noqa: E402

from gpt2_agent.api.app import build_components  # noqa: E402
from gpt2_agent.config import Settings, load_settings  # noqa: E402
from gpt2_agent.demo import generate_warehouse  # noqa: E402
from gpt2_agent.engine.executors.local import LocalExecutor  # noqa: E402
from gpt2_agent.engine.states import TERMINAL_RUN_STATES  # noqa: E402
from gpt2_agent.registry import Registry  # noqa: E402
from gpt2_agent.store import open_database, upgrade  # noqa: E402
from gpt2_agent.store.engine_tables import WorkflowRun  # noqa: E402
from gpt2_agent.store.payments_tables import OrderPayment  # noqa: E402

WORKFLOW = "order-fulfillment"
MODEL = "order-audit"
console = Console(width=200)
SHORT = {"insufficient_balance": "no funds", "card_expired": "expired", "auto-rejected": "auto-rej"}
TERMINAL = [str(s) for s in TERMINAL_RUN_STATES]


@dataclass
class Sink:
    """Counts the Message-IDs that arrive (SMTP is at-least-once: a retried step may resend)."""

    ids: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.ids[str(message["Message-ID"])] += 1
        return "250 OK"


@dataclass
class Level:
    backend: str
    in_flight: int
    runs: int
    seconds: float
    latency_ms: list[float]
    statuses: Counter[str]
    escalated: int
    mails: int
    double_charges: int
    warehouse_mismatch: int
    pass_size: float
    precision: str

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.seconds


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def train_model(settings: Settings, steps: int, work: Path | None) -> Path:
    """The real-size audit model, trained ``steps`` steps (cached in ``work``)."""
    from gpt2_agent.training.pipeline import train_from_config

    cached = work / f"order-audit-{steps}" if work else None
    if cached is not None and (cached / "config.json").exists():
        return cached
    overrides = [
        f"train.max_steps={steps}",
        "data.limit=6000",
        "eval.plots=false",
        "train.eval_every=100000",
        "train.checkpoint_every=100000",
        "register.enabled=false",
    ]
    if cached is not None:
        overrides.append(f'output_dir="{cached.parent / "train-run"}"')
    result = train_from_config(
        ROOT / "configs" / "order-audit.toml", settings, overrides=overrides, progress=True
    )
    folder = Path(result.model_dir)
    if cached is None:
        return folder
    shutil.copytree(folder, cached)
    return cached


class Reviewer(threading.Thread):
    """Decides every pending approval as soon as it appears, as the model recommends."""

    def __init__(self, engine: Any) -> None:
        super().__init__(daemon=True, name="bench-reviewer")
        self.engine = engine
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pending = self.engine.list_approvals(status="pending", limit=200).items
            for item in pending:
                approve = (item.context or {}).get("recommendation") == "approve"
                self.engine.decide(item.id, approve=approve, by="bench-reviewer", comment="bench")
            if not pending:
                self.stop.wait(0.01)


def outcome(run: WorkflowRun) -> str:
    """paid / insufficient_balance / card_expired, or how the order was rejected."""
    paid = step_output(run, "pay").get("status")
    if paid:
        return str(paid)
    if step_output(run, "gate").get("action") == "auto_reject":
        return "auto-rejected"
    return str(run.status)  # "rejected" by the reviewer


def step_output(run: WorkflowRun, step: str) -> dict[str, Any]:
    return ((run.context or {}).get(step) or {}).get("output") or {}


def drive(engine: Any, orders: list[str], in_flight: int) -> tuple[list[int], float]:
    """Keep ``in_flight`` runs going until every order has had one; returns (run ids, seconds)."""
    stmt = (
        select(WorkflowRun.id)
        .where(WorkflowRun.id.in_(bindparam("ids", expanding=True)))
        .where(WorkflowRun.status.in_(TERMINAL))
    )
    queue = list(orders)
    started: list[int] = []
    active: set[int] = set()
    t0 = time.perf_counter()
    while queue or active:
        while queue and len(active) < in_flight:
            run_id = engine.start_run(WORKFLOW, {"order_no": queue.pop()}, submitted_by="bench-clerk").id
            started.append(run_id)
            active.add(run_id)
        time.sleep(0.005)
        with engine.db.session() as s:
            active -= set(s.execute(stmt, {"ids": list(active)}).scalars())
    return started, time.perf_counter() - t0


def measure(backend: str, settings: Settings, orders: list[str], in_flight: int, sink: Sink) -> Level:
    parts = build_components(settings)
    engine = parts.engine
    executor = LocalExecutor(engine)
    reviewer = Reviewer(engine)
    executor.start()
    reviewer.start()
    try:
        drive(engine, orders[:4], min(4, in_flight))  # warm-up: load the model, fill the caches
        before = dict(parts.runtime.info(MODEL)["batching"])
        mails_before = sum(sink.ids.values())
        ids, seconds = drive(engine, orders[4:], in_flight)
        after = parts.runtime.info(MODEL)["batching"]
        time.sleep(0.2)  # the last mail's SMTP conversation may still be finishing
        with engine.db.session() as s:
            runs = s.execute(select(WorkflowRun).where(WorkflowRun.id.in_(ids))).scalars().all()
            latency = [(r.finished_at - r.created_at).total_seconds() * 1000 for r in runs if r.finished_at]
            statuses = Counter(outcome(r) for r in runs)
            escalated = sum(1 for r in runs if step_output(r, "gate").get("action") == "escalate")
            paid = s.execute(
                select(OrderPayment.order_no).where(
                    OrderPayment.run_id.in_(ids), OrderPayment.status == "paid"
                )
            ).scalars()
            paid_counts = Counter(paid)
        double = sum(n - 1 for n in paid_counts.values() if n > 1)
        # The gateway's own ledger in the warehouse (the warehouse's ``payments`` also holds history).
        warehouse = create_engine(settings.warehouse_url)
        with warehouse.connect() as conn:
            in_warehouse = conn.execute(
                text(
                    "SELECT COUNT(*) FROM sandbox_ledger WHERE status = 'paid' AND order_no IN :nos"
                ).bindparams(bindparam("nos", expanding=True)),
                {"nos": orders[4:]},
            ).scalar_one()
        warehouse.dispose()
        passes = after["forward_passes"] - before["forward_passes"]
        texts = after["texts"] - before["texts"]
        return Level(
            backend=backend,
            in_flight=in_flight,
            runs=len(ids),
            seconds=seconds,
            latency_ms=latency,
            statuses=statuses,
            escalated=escalated,
            mails=sum(sink.ids.values()) - mails_before,
            double_charges=double,
            warehouse_mismatch=abs(int(in_warehouse) - sum(paid_counts.values())),
            pass_size=texts / passes if passes else float("nan"),
            precision=str(parts.runtime.info(MODEL).get("precision")),
        )
    finally:
        reviewer.stop.set()
        reviewer.join(timeout=10)
        executor.stop()
        parts.close()  # the runtime and the engine's database


@contextmanager
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="1,8,32", help="runs in flight; the first is the baseline")
    parser.add_argument("--runs", type=int, default=240, help="runs per level above 1")
    parser.add_argument("--sequential", type=int, default=40, help="runs at one in flight")
    parser.add_argument("--orders", type=int, default=8000, help="demo warehouse size")
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--pg", default="", help="also measure with the application database on PostgreSQL")
    parser.add_argument("--work", type=Path, default=None, help="keep the warehouse and model here")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x]

    console.print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, Python {platform.python_version()}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, smtp_sink() as (sink, smtp_port):
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        warehouse_db = work / f"warehouse-{args.orders}.db"
        if not warehouse_db.exists():
            generate_warehouse(f"sqlite:///{warehouse_db}", orders=args.orders, seed=0)
        model_dir = train_model(
            load_settings(home=Path(tmp) / "train", warehouse_url=f"sqlite:///{warehouse_db}"),
            args.train_steps,
            args.work,
        )
        with create_engine(f"sqlite:///{warehouse_db}").connect() as conn:
            all_orders = list(conn.execute(text("SELECT order_no FROM orders ORDER BY order_no")).scalars())
        random.Random(0).shuffle(all_orders)

        backends: list[tuple[str, Any]] = [("sqlite", nullcontext(""))]
        if args.pg:
            backends.append(("postgresql", pg_schema(args.pg)))
        results: list[Level] = []
        for backend, db_context in backends:
            with db_context as pg_url:
                home = Path(tmp) / backend
                # A fresh copy of the warehouse per backend: payments change balances.
                wh = home / "warehouse.db"
                home.mkdir(parents=True)
                wh.write_bytes(warehouse_db.read_bytes())
                values: dict[str, Any] = {
                    "home": home,
                    "warehouse_url": f"sqlite:///{wh}",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp_port,
                    "smtp_from": "shop@example.com",
                }
                if pg_url:
                    values["database_url"] = pg_url
                settings = load_settings(**values)
                db = open_database(settings)
                upgrade(db)
                registry = Registry(settings, db)
                version = registry.register(model_dir, MODEL, created_by="bench").version
                registry.promote(MODEL, version, by="bench", force=True)
                db.dispose()
                offset = 0
                for level in levels:
                    n = (args.sequential if level == 1 else args.runs) + 4
                    chunk = all_orders[offset : offset + n]
                    offset += n
                    results.append(measure(backend, settings, chunk, level, sink))
                    r = results[-1]
                    console.print(
                        f"  {backend:<10} {level:>3} in flight: {r.runs_per_s:6.2f} runs/s ({r.runs} runs)"
                    )

    print_table(results)
    console.print(
        f"total bench time {time.perf_counter() - started:.0f} s; load average at end: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def print_table(results: list[Level]) -> None:
    table = Table(title=f"{WORKFLOW}: end-to-end runs (a reviewer thread decides escalations at once)")
    for col in (
        "database",
        "in flight",
        "runs",
        "runs/s",
        "× 1 in flight",
        "run p50 ms",
        "run p99 ms",
        "model",
        "texts/pass",
        "escalated",
        "outcomes",
        "mails",
        "double charges",
        "ledger ≠ warehouse",
    ):
        table.add_column(col, justify="right")
    base: dict[str, float] = {}
    for r in results:
        base.setdefault(r.backend, r.runs_per_s)
        table.add_row(
            r.backend,
            str(r.in_flight),
            str(r.runs),
            f"{r.runs_per_s:.2f}",
            f"{r.runs_per_s / base[r.backend]:.2f}",
            f"{statistics.median(r.latency_ms):.0f}",
            f"{pct(r.latency_ms, 0.99):.0f}",
            r.precision,
            f"{r.pass_size:.1f}",
            f"{r.escalated / r.runs:.0%}",
            ", ".join(f"{SHORT.get(k, k)} {v}" for k, v in sorted(r.statuses.items())),
            str(r.mails),
            str(r.double_charges),
            str(r.warehouse_mismatch),
        )
    console.print(table)
    # A reviewer's rejection ends the run at once: nothing is charged and no mail goes out.
    bad = [
        r
        for r in results
        if r.double_charges or r.warehouse_mismatch or r.mails != r.runs - r.statuses["rejected"]
    ]
    console.print(
        "checks: "
        + (
            "one mail per run (none after a reviewer's rejection), nothing charged twice, ledgers agree"
            if not bad
            else f"FAILED in {len(bad)} level(s)"
        )
    )


if __name__ == "__main__":
    main()
