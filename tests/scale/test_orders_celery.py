"""``order-fulfillment`` on two Celery workers and PostgreSQL, with one worker SIGKILLed and the other
SIGSTOPped past its lease mid-batch: every run finishes (paid, or declined by the bank), no order
is charged twice (application ledger, gateway ledger and warehouse payments), and every customer
gets one notice (one Message-ID per order).

The shipped workflow runs with one change: its last step (``order_outcome``, registered with
``max_attempts=1``) may be retried, because the engine counts a lost worker as an attempt and a
worker lost during that step would otherwise fail a paid order's run. The step is a pure check,
so retrying it is safe; once the action allows retries itself this copy can go.

``GPT2_AGENT_SCALE_ORDERS`` sets the number of runs (60 here; 200 for the full-size manual run).
SMTP is at-least-once: a worker that dies after the server accepted a message but before the
step's commit makes the retried step send it again under the same Message-ID, which receivers
use to drop the copy; the test counts those raw re-deliveries and requires one Message-ID each.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path

from sqlalchemy import select, text

from gpt2_agent.api.app import build_engine
from gpt2_agent.config import load_settings
from gpt2_agent.demo import generate_warehouse
from gpt2_agent.engine.executors.celery import CeleryExecutor
from gpt2_agent.engine.workflows import parse_workflow
from gpt2_agent.store.engine_tables import Task
from tests.conftest import WAREHOUSE_ORDERS, WAREHOUSE_SEED, Smtp
from tests.orders.conftest import register_audit_model
from tests.scale import procs
from tests.scale.conftest import delete_queues
from tests.scale.test_worker_faults import group_pids, owner_pid
from tests.serverproc import ROOT, cli_env

ORDERS = int(os.environ.get("GPT2_AGENT_SCALE_ORDERS", "60"))
WORKFLOW = "order-fulfillment-scale"
LEASE = 3.0


def test_orders_survive_killed_and_stopped_workers(
    tmp_path: Path,
    pg_url: str,
    redis_url: str,
    prefix: str,
    smtp: Smtp,
    audit_model_dir: Path,
) -> None:
    generate_warehouse(pg_url, orders=WAREHOUSE_ORDERS, seed=WAREHOUSE_SEED)  # the shop's tables, same server
    values = {
        "GPT2_AGENT_DATABASE_URL": pg_url,
        "GPT2_AGENT_WAREHOUSE_URL": pg_url,
        "GPT2_AGENT_EXECUTOR": "celery",
        "GPT2_AGENT_BROKER_URL": redis_url,
        "GPT2_AGENT_BROKER_QUEUE_PREFIX": prefix,
        "GPT2_AGENT_PLUGINS": '["tests.orders.plugin"]',
        # Let the gate approve every order on its own: this test is about the workers.
        "GPT2_AGENT_GATE_AUTO_APPROVE_MIN_PROBABILITY": "0.000001",
        "GPT2_AGENT_GATE_AUTO_REJECT_MAX_PROBABILITY": "0",
        "GPT2_AGENT_GATE_AUTO_APPROVE_MAX_AMOUNT": "1000000",
        "GPT2_AGENT_SMTP_PORT": str(smtp.port),
        "GPT2_AGENT_SMTP_FROM": "shop@example.com",
        "GPT2_AGENT_LEASE_SECONDS": str(LEASE),
        "GPT2_AGENT_HEARTBEAT_SECONDS": "0.5",
        "GPT2_AGENT_SWEEP_INTERVAL_SECONDS": "0.5",
        "GPT2_AGENT_DISPATCH_INTERVAL_SECONDS": "0.5",
    }
    home = tmp_path / "home"
    env = cli_env(home, **values)
    settings = load_settings(
        home=home,
        **{k.removeprefix("GPT2_AGENT_").lower(): v for k, v in values.items() if k != "GPT2_AGENT_PLUGINS"},
    )
    engine, _ = build_engine(settings)
    register_audit_model(settings, engine.db, audit_model_dir)
    shipped = (ROOT / "src" / "gpt2_agent" / "workflows" / "order-fulfillment.yaml").read_text(
        encoding="utf-8"
    )
    step = "  - name: outcome\n    uses: order_outcome\n"
    assert step in shipped
    engine.workflows.register(
        parse_workflow(
            shipped.replace("name: order-fulfillment\n", f"name: {WORKFLOW}\n", 1).replace(
                step, step + "    retry: {max_attempts: 3, initial_backoff_seconds: 0.2}\n"
            ),
            f"{WORKFLOW}.yaml",
        )
    )
    publisher = CeleryExecutor(engine)
    publisher.start()
    with engine.db.session() as s:
        orders = [
            r for (r,) in s.execute(text("SELECT order_no FROM orders ORDER BY id LIMIT :n"), {"n": ORDERS})
        ]
    workers: list[procs.Proc] = []

    def worker(name: str) -> procs.Proc:
        proc = procs.Proc(
            [*procs.PY, "gpt2_agent.cli.worker", "-c", "2", "-n", f"{name}-{prefix}@test"],
            env,
            tmp_path / f"{name}.log",
        ).start()
        workers.append(proc)
        return proc

    def paid_count() -> int:
        with engine.db.session() as s:
            return int(s.execute(text("SELECT count(*) FROM order_payments")).scalar_one())

    try:
        a, b = worker("a"), worker("b")
        a.wait_for(procs.READY, 2)
        b.wait_for(procs.READY, 2)
        run_ids = [engine.start_run(WORKFLOW, {"order_no": o}, submitted_by="clerk").id for o in orders]

        procs.wait_until(lambda: paid_count() >= ORDERS // 5, timeout=120, what="orders in flight")
        a.kill()
        a2 = worker("a2")
        assert b.proc is not None
        b_pids = group_pids(b.proc.pid)

        def b_holds() -> bool:
            with engine.db.session() as s:
                owners = s.scalars(select(Task.lease_owner).where(Task.status == "running")).all()
            return any(owner_pid(o) in b_pids for o in owners)

        procs.wait_until(b_holds, timeout=60, interval=0.02, what="worker B holding a step")
        b.signal(signal.SIGSTOP)
        a2.wait_for(procs.READY, 2)
        time.sleep(LEASE + 3)
        b.signal(signal.SIGCONT)

        def all_finished() -> bool:
            with engine.db.session() as s:
                open_runs = s.execute(
                    text("SELECT count(*) FROM workflow_runs WHERE status NOT IN ('succeeded', 'failed')")
                ).scalar_one()
            return int(open_runs) == 0

        procs.wait_until(all_finished, timeout=240, interval=0.5, what="every order run finished")
        time.sleep(1.0)  # late, fenced-out results of B may still arrive: they must change nothing

        runs = {engine.get_run(r).input["order_no"]: engine.get_run(r) for r in run_ids}
        with engine.db.session() as s:
            per_order = s.execute(
                text("SELECT order_no, count(*) FROM order_payments GROUP BY order_no")
            ).all()
            outcome = dict(s.execute(text("SELECT order_no, status FROM order_payments")).all())
            ledger = s.execute(
                text("SELECT idempotency_key, count(*) FROM sandbox_ledger GROUP BY idempotency_key")
            ).all()
            payments = s.execute(
                text(
                    "SELECT p.order_no, count(*) FROM payments p "
                    "JOIN sandbox_ledger l ON l.reference = p.reference GROUP BY p.order_no"
                )
            ).all()
            retried = s.execute(text("SELECT count(*) FROM tasks WHERE attempt > 1")).scalar_one()
        for order_no, run in runs.items():
            # A run fails only when the bank declined the order (the workflow's last step says so).
            expected = "succeeded" if outcome.get(order_no) == "paid" else "failed"
            assert run.status == expected, (order_no, run.status, outcome.get(order_no), run.error)
        assert sorted(o for o, _ in per_order) == sorted(orders)  # every order reached the payment step
        assert {n for _, n in per_order} == {1}, "an order has two payment records"
        assert {n for _, n in ledger} == {1}, "the gateway charged one key twice"
        assert {n for _, n in payments} == {1}, "the warehouse recorded two charges for an order"
        assert len(ledger) == ORDERS

        deliveries: collections.Counter[str] = collections.Counter(
            str(m["Message-ID"]) for m in smtp.sink.messages
        )
        assert len(deliveries) == ORDERS, "one notice per order"
        redelivered = sum(n - 1 for n in deliveries.values())
        print(f"{ORDERS} orders, {retried} steps retried after the faults, {redelivered} SMTP re-deliveries")
        assert retried > 0
    finally:
        for proc in workers:
            proc.kill()
        publisher.stop()
        engine.db.dispose()
        delete_queues(redis_url, prefix, ["default", "training"])
