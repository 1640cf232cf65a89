"""``order_payment`` and the sandbox gateway: exact amounts, refusals, and exactly-once charges."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from gpt2_agent.actions.gateway import ChargeRequest, PaymentRefused, PaymentStatus, SandboxGateway
from gpt2_agent.actions.money import InvalidAmount, parse_amount
from gpt2_agent.actions.warehouse import Warehouse
from gpt2_agent.engine.errors import InvalidInput
from gpt2_agent.engine.handlers import TaskContext
from gpt2_agent.store.payments_tables import OrderPayment
from tests.orders.conftest import OrderEnv, task_row

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ORDER = "66120"


def _wait_task(env: OrderEnv, task_id: int, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = env.engine.get_task(task_id)
        if task.status in ("succeeded", "failed"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def _payments(env: OrderEnv) -> int:
    with env.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(OrderPayment)) or 0)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("NaN", "finite"),
        ("sNaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        ("-5.00", "positive"),
        ("0", "positive"),
        ("0.00", "positive"),
        ("1.001", "two decimal places"),
        ("0.005", "two decimal places"),
        (0.1 + 0.2, "two decimal places"),
        ("1e13", "too large"),
        ("12,00", "decimal number"),
        ("", "decimal number"),
        (True, "decimal number"),
        (None, "decimal number"),
    ],
)
def test_bad_amounts_are_refused(value: Any, why: str) -> None:
    with pytest.raises(InvalidAmount, match=why):
        parse_amount(value)


def test_good_amounts_stay_exact() -> None:
    assert parse_amount("479.46") == Decimal("479.46")
    assert parse_amount(479.46) == Decimal("479.46")  # through its shortest text, not binary
    assert parse_amount(5) == Decimal("5.00")
    assert parse_amount(" 1.5 ") == Decimal("1.50")
    assert str(parse_amount("1e2")) == "100.00"
    assert parse_amount("999999999999.99") == Decimal("999999999999.99")


@SQLITE_ONLY
def test_bad_amounts_are_invalid_input(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    for amount in ("NaN", "Infinity", "-1", "1.001", 1e20):
        with pytest.raises(InvalidInput) as caught:
            env.engine.submit_task("order_payment", {"order_no": ORDER, "amount": amount})
        assert caught.value.errors[0]["field"] == "amount"
    with pytest.raises(InvalidInput) as caught:
        env.engine.submit_task("order_payment", {"order_no": "66a20", "amount": "1.00"})
    assert caught.value.errors[0]["field"] == "order_no"
    assert _payments(env) == 0


def test_amount_mismatch_is_refused_and_nothing_is_charged(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    order = env.warehouse.order(ORDER)
    before = env.balance(ORDER)
    for body, words in (
        ({"amount": str(order.amount + Decimal("0.01"))}, "does not match"),
        ({"amount": str(order.amount - Decimal("0.01"))}, "does not match"),
        ({"amount": str(order.amount), "currency": "USD"}, "does not match"),
    ):
        task_id = env.engine.submit_task(
            "order_payment", {"order_no": ORDER, **body}, submitted_by="clerk"
        ).id
        task = _wait_task(env, task_id)
        assert task.status == "failed" and words in task.error and "nothing was charged" in task.error
        assert task.attempt == 1  # a refusal is permanent: not retried
    assert env.balance(ORDER) == before
    assert env.gateway.ledger_entries() == []
    assert _payments(env) == 0
    # The gateway refuses a mismatch on its own too (inside its transaction).
    with pytest.raises(PaymentRefused, match="does not match"):
        env.gateway.charge(ChargeRequest("direct", ORDER, order.amount * 2, "CNY"))
    assert env.gateway.ledger_entries() == [] and env.balance(ORDER) == before


def test_concurrent_charges_with_one_key_charge_once(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    order = env.warehouse.order(ORDER)
    before = env.balance(ORDER)
    request = ChargeRequest("run:1:pay", ORDER, order.amount, "CNY")
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def charge() -> None:
        barrier.wait()
        try:
            results.append(env.gateway.charge(request))
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=charge) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert {r.reference for r in results} == {results[0].reference}
    assert sum(not r.replayed for r in results) == 1
    assert all(r.status is PaymentStatus.PAID for r in results)
    assert len(env.gateway.ledger_entries()) == 1
    assert env.balance(ORDER) == before - order.amount
    with env.warehouse.db.session() as s:
        count = s.execute(
            text("SELECT count(*) FROM payments WHERE reference = :r"), {"r": results[0].reference}
        ).scalar_one()
    assert count == 1
    # The same key for another order is a conflict, not a replay and not a charge.
    with pytest.raises(PaymentRefused, match="was used for order"):
        env.gateway.charge(ChargeRequest("run:1:pay", "12345", order.amount, "CNY"))


@SQLITE_ONLY
def test_a_retried_step_replays_the_charge(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    task = env.engine.handlers.get("order_payment")
    order = env.warehouse.order(ORDER)
    before = env.balance(ORDER)
    inp = task.parse_input({"order_no": ORDER, "amount": str(order.amount)})
    task_id = task_row(env.db)
    first = task.fn(TaskContext(task_id=task_id, attempt=1, idempotency_key="run:9:pay"), inp)
    again = task.fn(TaskContext(task_id=task_id, attempt=2, idempotency_key="run:9:pay"), inp)
    assert first.paid and not first.replayed and again.replayed
    assert (again.reference, again.payment_id, again.amount) == (
        first.reference,
        first.payment_id,
        order.amount,
    )
    assert first.model_dump(mode="json")["amount"] == f"{order.amount:.2f}"
    assert env.balance(ORDER) == before - order.amount
    assert _payments(env) == 1
    with env.db.session() as s:
        row = s.scalars(select(OrderPayment)).one()
        assert isinstance(row.amount, Decimal) and row.amount == order.amount


def test_the_sandbox_leaves_a_missing_warehouse_alone(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "warehouse.db"
    warehouse = Warehouse(f"sqlite:///{missing}")
    SandboxGateway(warehouse)  # no table is created until the first charge
    warehouse.close()
    assert not missing.exists()


@SQLITE_ONLY
def test_a_regenerated_warehouse_does_not_replay_old_charges(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    order = env.warehouse.order(ORDER)
    request = ChargeRequest("run:1:pay", ORDER, order.amount, "CNY")
    first = env.gateway.charge(request)
    # Regenerating the warehouse replaces payments and balances but not the sandbox's ledger.
    with env.warehouse.db.session() as s:
        s.execute(text("DELETE FROM payments WHERE reference = :r"), {"r": first.reference})
        s.execute(
            text("UPDATE accounts SET balance = balance + :a WHERE id = :id"),
            {"a": float(order.amount), "id": order.account_id},
        )
    before = env.balance(ORDER)
    second = env.gateway.charge(request)
    assert not second.replayed and second.status is PaymentStatus.PAID
    assert env.balance(ORDER) == before - order.amount
    assert len(env.gateway.ledger_entries()) == 1
