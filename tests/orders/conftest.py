"""Fixtures for the order tests (the warehouse, audit model and SMTP sink are in ``tests/conftest.py``): an
engine with every order action registered (SQLite and PostgreSQL through ``db_url``)."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gpt2_agent.actions.feedback import install_feedback
from gpt2_agent.actions.gate import AutomationGate
from gpt2_agent.actions.gateway import SandboxGateway
from gpt2_agent.actions.order_registration import register_order_actions
from gpt2_agent.actions.registration import register_model_free_actions
from gpt2_agent.actions.warehouse import Warehouse
from gpt2_agent.config import Settings, load_settings
from gpt2_agent.demo import generate_warehouse
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors.local import LocalExecutor
from gpt2_agent.registry import Registry
from gpt2_agent.serving import ServingRuntime
from gpt2_agent.store import Database
from tests.conftest import PG_URL, WAREHOUSE_ORDERS, WAREHOUSE_SEED, Sink, Smtp

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "src" / "gpt2_agent" / "workflows"


# --- per test: a warehouse of its own -----------------------------------------------------------


@pytest.fixture
def warehouse_url(base_warehouse: Path, db_url: str, tmp_path: Path) -> str:
    """A fresh warehouse on the same backend as the application database."""
    if db_url.startswith("sqlite"):
        target = tmp_path / "warehouse.db"
        shutil.copyfile(base_warehouse, target)
        return f"sqlite:///{target}"
    # PostgreSQL: the application's schema holds the warehouse tables too (as in a shared database).
    generate_warehouse(db_url, orders=WAREHOUSE_ORDERS, seed=WAREHOUSE_SEED)
    return db_url


def task_row(db: Database, type_: str = "order_payment") -> int:
    """A real ``tasks`` row, for calling a handler directly (ledger rows reference their task)."""
    from gpt2_agent.store.engine_tables import Task

    with db.session() as session:
        task = Task(type=type_, status="running", input={}, idempotency_key="")
        session.add(task)
        session.flush()
        return int(task.id)


# --- the order environment -------------------------------------------------------------------------


def register_audit_model(settings: Settings, db: Database, model_dir: Path) -> int:
    """Register the trained folder as ``order-audit`` and make it production; returns the version."""
    registry = Registry(settings, db)
    version = registry.register(model_dir, "order-audit", created_by="tests").version
    registry.promote("order-audit", version, by="tests")
    return version


@dataclass
class OrderEnv:
    """An engine with the order actions, its executor, runtime, warehouse and SMTP sink."""

    settings: Settings
    db: Database
    engine: Engine
    executor: LocalExecutor
    runtime: ServingRuntime
    warehouse: Warehouse
    gateway: SandboxGateway
    sink: Sink
    model_version: int

    def start(self, order_no: str, *, workflow: str = "order-fulfillment", by: str = "clerk") -> int:
        return self.engine.start_run(workflow, {"order_no": order_no}, submitted_by=by).id

    def wait(self, run_id: int, states: tuple[str, ...], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.engine.get_run(run_id)
            if run.status in states:
                return run
            time.sleep(0.05)
        run = self.engine.get_run(run_id)
        raise AssertionError(f"run {run_id} is {run.status}, not in {states}: {run.error}")

    def approval_of(self, run_id: int) -> Any:
        pending = self.engine.list_approvals(status="pending", limit=200).items
        return next(a for a in pending if a.run_id == run_id)

    def balance(self, order_no: str) -> Decimal:
        order = self.warehouse.order(order_no)
        with self.warehouse.db.session() as s:
            value = s.execute(text("SELECT balance FROM accounts WHERE id = :id"), {"id": order.account_id})
            return Decimal(str(value.scalar_one())).quantize(Decimal("0.01"))

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.session() as s:
            return s.execute(text(sql), params).scalar()


@pytest.fixture
def make_env(
    settings: Settings,
    database: Database,
    warehouse_url: str,
    smtp: Smtp,
    audit_model_dir: Path,
) -> Iterator[Callable[..., OrderEnv]]:
    """``make_env(gate=None, **settings_overrides)`` -> a started :class:`OrderEnv`."""
    made: list[OrderEnv] = []

    def make(gate: AutomationGate | None = None, **overrides: Any) -> OrderEnv:
        values = settings.model_dump()
        values.update(
            warehouse_url=warehouse_url,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_from="shop@example.com",
            **overrides,
        )
        s = load_settings(**values)
        version = register_audit_model(s, database, audit_model_dir)
        runtime = ServingRuntime(s, Registry(s, database), max_wait_ms=2.0, reload_interval_s=0, dtype="fp32")
        engine = Engine(database, s)
        register_model_free_actions(engine.handlers, s, database)
        warehouse = Warehouse(warehouse_url)
        gateway = SandboxGateway(warehouse, today=lambda: dt.date(2026, 11, 29))
        register_order_actions(engine.handlers, s, database, runtime, gate, gateway=gateway)
        engine.workflows.load_dir(WORKFLOWS)
        install_feedback(engine)
        executor = LocalExecutor(engine)
        executor.start()
        env = OrderEnv(s, database, engine, executor, runtime, warehouse, gateway, smtp.sink, version)
        made.append(env)
        return env

    yield make
    for env in made:
        env.executor.stop(wait=True)
        env.runtime.close()
        env.warehouse.close()


# --- picking orders that hit each path ----------------------------------------------------------------

TODAY = dt.date(2026, 11, 29)


def pick_orders(warehouse: Warehouse, *, n_escalate: int = 2) -> dict[str, str]:
    """Orders of the seeded warehouse for each payment path, on distinct accounts.

    ``paid``: the showcase 66120 (valid card, balance covers it); ``insufficient``: a valid card and
    a balance below the amount; ``expired``: a card past its expiry date; ``big_*``: orders above
    every one of those (to be escalated by the amount limit) whose balance covers them.
    """
    rows = []
    with warehouse.db.session() as s:
        for r in s.execute(
            text(
                "SELECT o.order_no, o.amount, a.balance, c.expires_on, a.id AS account "
                "FROM orders o JOIN payment_cards c ON c.id = o.card_id "
                "JOIN accounts a ON a.id = c.account_id "
                "ORDER BY o.id"
            )
        ):
            expires = (
                r.expires_on if isinstance(r.expires_on, dt.date) else dt.date.fromisoformat(r.expires_on)
            )
            rows.append((r.order_no, Decimal(str(r.amount)), Decimal(str(r.balance)), expires, r.account))
    used: set[int] = set()
    by_no = {r[0]: r for r in rows}
    picked = {"paid": "66120"}
    used.add(by_no["66120"][4])
    picked["risky"] = "12345"
    used.add(by_no["12345"][4])

    def first(pred: Callable[[tuple[Any, ...]], bool], key: Callable[[tuple[Any, ...]], Any]) -> str:
        for r in sorted(rows, key=key):
            if r[4] not in used and pred(r):
                used.add(r[4])
                return str(r[0])
        raise AssertionError("the warehouse has no order for this path")

    valid = lambda r: r[3] > TODAY + dt.timedelta(days=30)  # noqa: E731
    picked["insufficient"] = first(lambda r: valid(r) and r[2] < r[1], key=lambda r: r[1])
    picked["expired"] = first(lambda r: r[3] < TODAY and r[2] >= r[1], key=lambda r: r[1])
    limit = max(by_no[picked[k]][1] for k in ("paid", "insufficient", "expired"))
    for i in range(n_escalate):
        picked[f"big_{i}"] = first(lambda r: valid(r) and r[1] > limit and r[2] >= r[1], key=lambda r: r[1])
    picked["limit"] = str(limit)
    return picked


__all__ = ["PG_URL", "OrderEnv", "Sink", "Smtp", "pick_orders", "register_audit_model", "task_row"]
