"""kill -9 of the server between the gateway's charge and the engine's commit: after a restart the
retried payment step replays the charge, and there is exactly one ledger entry and one debit."""

from __future__ import annotations

import json
import shutil
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from gpt2_agent.actions.warehouse import Warehouse
from gpt2_agent.client import Client
from gpt2_agent.config import load_settings
from gpt2_agent.store import open_database
from tests.orders.conftest import Smtp, register_audit_model
from tests.orders.crash_gateway import MARKER_ENV
from tests.serverproc import Server, cli_env, create_key

ORDER = "66120"


def _balance(warehouse: Warehouse, account_id: int) -> Decimal:
    with warehouse.db.session() as s:
        value = s.execute(
            text("SELECT balance FROM accounts WHERE id = :id"), {"id": account_id}
        ).scalar_one()
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _count(warehouse: Warehouse, sql: str, **params: object) -> int:
    with warehouse.db.session() as s:
        return int(s.execute(text(sql), params).scalar_one())


def test_sigkill_between_charge_and_commit_charges_once(
    tmp_path: Path, base_warehouse: Path, audit_model_dir: Path, smtp: Smtp
) -> None:
    home = tmp_path / "home"
    warehouse_file = tmp_path / "warehouse.db"
    shutil.copyfile(base_warehouse, warehouse_file)
    warehouse_url = f"sqlite:///{warehouse_file}"
    marker = tmp_path / "crashed"
    env = cli_env(
        home,
        GPT2_AGENT_WAREHOUSE_URL=warehouse_url,
        GPT2_AGENT_PLUGINS='["tests.orders.plugin"]',
        GPT2_AGENT_PAYMENT_GATEWAY="tests.orders.crash_gateway:crash_after_charge",
        GPT2_AGENT_GATE_AUTO_APPROVE_MIN_PROBABILITY="0.000001",
        GPT2_AGENT_GATE_AUTO_REJECT_MAX_PROBABILITY="0",
        GPT2_AGENT_GATE_AUTO_APPROVE_MAX_AMOUNT="100000",
        GPT2_AGENT_SMTP_PORT=str(smtp.port),
        GPT2_AGENT_SMTP_FROM="shop@example.com",
        GPT2_AGENT_LEASE_SECONDS="3",
        GPT2_AGENT_HEARTBEAT_SECONDS="1",
        GPT2_AGENT_SWEEP_INTERVAL_SECONDS="0.5",
        **{MARKER_ENV: str(marker)},
    )
    settings = load_settings(home=home, warehouse_url=warehouse_url)
    db = open_database(settings)
    register_audit_model(settings, db, audit_model_dir)
    db.dispose()
    warehouse = Warehouse(warehouse_url)
    order = warehouse.order(ORDER)
    before = _balance(warehouse, order.account_id)
    key = create_key(env, "submitter", "clerk")

    server = Server(env, tmp_path / "server.log")
    server.start()
    try:
        with Client(server.url, key) as client:
            run_id = client.start_run(
                "order-fulfillment", {"order_no": ORDER}, idempotency_key="crash-66120"
            )["id"]
        assert server.proc is not None
        server.proc.wait(timeout=90)  # the gateway wrapper kills the server right after the charge
        assert marker.exists(), (tmp_path / "server.log").read_text()[-3000:]
        charge_key, reference = marker.read_text().split()
        assert charge_key == f"run:{run_id}:pay"

        # Between charge and commit: the money moved, the engine never heard of it.
        assert _balance(warehouse, order.account_id) == before - order.amount
        assert _count(warehouse, "SELECT count(*) FROM sandbox_ledger") == 1
        app = open_database(settings, migrate=False)
        with app.session() as s:
            assert s.execute(text("SELECT count(*) FROM order_payments")).scalar_one() == 0
            status = s.execute(
                text("SELECT status FROM tasks WHERE run_id = :r AND step_name = 'pay'"), {"r": run_id}
            ).scalar_one()
            assert status == "running"
        assert smtp.sink.messages == []

        server.start()
        with Client(server.url, key) as client:
            run = client.wait_run(run_id, timeout=90)
        assert run["status"] == "succeeded", run
        assert run["output"]["reference"] == reference and run["output"]["status"] == "paid"
        time.sleep(0.5)  # nothing more may arrive

        # Exactly one charge: one ledger entry, one warehouse payment, one debit, one app ledger row.
        assert _count(warehouse, "SELECT count(*) FROM sandbox_ledger") == 1
        assert _count(warehouse, "SELECT count(*) FROM payments WHERE reference = :r", r=reference) == 1
        assert _balance(warehouse, order.account_id) == before - order.amount
        with app.session() as s:
            rows = s.execute(text("SELECT idempotency_key, amount, reference FROM order_payments")).all()
            pay = s.execute(
                text("SELECT attempt, output FROM tasks WHERE run_id = :r AND step_name = 'pay'"),
                {"r": run_id},
            ).one()
        app.dispose()
        assert [(k, Decimal(str(a)).quantize(Decimal("0.01")), r) for k, a, r in rows] == [
            (charge_key, order.amount, reference)
        ]
        output = pay.output if isinstance(pay.output, dict) else json.loads(pay.output)
        assert pay.attempt == 2 and output["replayed"] is True
        assert [m["To"] for m in smtp.sink.messages] == [order.customer_email]
    finally:
        server.stop()
        warehouse.close()
