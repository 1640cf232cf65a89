"""The demo warehouse: determinism, integrity, payment consistency, and learnable decisions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from gpt2_agent.demo import SHOWCASE_ORDERS, generate_warehouse, warehouse_digest
from gpt2_agent.demo.company import build_company


def _sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def _rows(url: str, sql: str) -> list[dict]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql)).mappings()]
    finally:
        engine.dispose()


def test_same_seed_writes_the_same_rows(tmp_path: Path) -> None:
    a = generate_warehouse(_sqlite(tmp_path, "a.db"), orders=300, seed=7)
    b = generate_warehouse(_sqlite(tmp_path, "b.db"), orders=300, seed=7)
    c = generate_warehouse(_sqlite(tmp_path, "c.db"), orders=300, seed=8)
    assert a.counts == b.counts
    digest = warehouse_digest(_sqlite(tmp_path, "a.db"))
    assert digest == warehouse_digest(_sqlite(tmp_path, "b.db"))
    assert digest != warehouse_digest(_sqlite(tmp_path, "c.db"))
    assert c.orders == 300


def test_regenerating_replaces_the_tables(tmp_path: Path) -> None:
    url = _sqlite(tmp_path, "w.db")
    generate_warehouse(url, orders=200, seed=1)
    generate_warehouse(url, orders=120, seed=1)
    assert _rows(url, "SELECT COUNT(*) AS n FROM orders")[0]["n"] == 120


def test_same_data_on_sqlite_and_postgres(tmp_path: Path, db_url: str) -> None:
    """The digest hashes the values as read back, so both databases must hold identical data."""
    generate_warehouse(db_url, orders=150, seed=3)
    reference = _sqlite(tmp_path, "ref.db")
    generate_warehouse(reference, orders=150, seed=3)
    assert warehouse_digest(db_url) == warehouse_digest(reference)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('wh') / 'warehouse.db'}"
    generate_warehouse(url, orders=1500, seed=0)
    return url


def test_order_numbers_are_unique_and_the_showcase_orders_exist(warehouse: str) -> None:
    orders = _rows(warehouse, "SELECT order_no, amount, currency, created_at FROM orders")
    numbers = [o["order_no"] for o in orders]
    assert len(set(numbers)) == len(numbers) == 1500
    assert all(n.isdigit() and 5 <= len(n) <= 6 for n in numbers)
    assert set(SHOWCASE_ORDERS) <= set(numbers)
    assert {o["currency"] for o in orders} == {"CNY"}
    status = {
        r["order_no"]: r
        for r in _rows(
            warehouse,
            "SELECT o.order_no, d.decision, p.status FROM orders o "
            "LEFT JOIN audit_decisions d ON d.order_id = o.id LEFT JOIN payments p ON p.order_id = o.id",
        )
    }
    assert status["66120"]["decision"] is None and status["12345"]["decision"] is None
    assert status["77410"]["decision"] == "approve" and status["77410"]["status"] == "paid"
    note = _rows(warehouse, "SELECT notes FROM orders WHERE order_no = '12345'")[0]["notes"]
    assert "转运" in note or "forward" in note.lower() or "集运" in note


def test_messages_and_notes_are_bilingual(warehouse: str) -> None:
    texts = [r["text"] for r in _rows(warehouse, "SELECT text FROM customer_messages")]
    assert "帮我审核一下订单 66120" in texts
    assert "did the payment for 77410 go through?" in texts
    langs = {r["lang"] for r in _rows(warehouse, "SELECT DISTINCT lang FROM customer_messages")}
    assert langs == {"zh", "en", "mixed"}
    notes = [r["notes"] for r in _rows(warehouse, "SELECT notes FROM orders WHERE notes <> ''")]
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in notes)
    assert any(n.isascii() for n in notes)


def test_payment_outcomes_follow_balances_and_card_expiry(warehouse: str) -> None:
    """Replaying the payments backwards from today's balances reproduces every outcome."""
    balance = {
        r["id"]: Decimal(str(r["balance"])) for r in _rows(warehouse, "SELECT id, balance FROM accounts")
    }
    expiry = {
        r["id"]: dt.date.fromisoformat(str(r["expires_on"]))
        for r in _rows(warehouse, "SELECT id, expires_on FROM payment_cards")
    }
    payments = _rows(
        warehouse,
        "SELECT p.account_id, p.card_id, p.amount, p.status, p.attempted_at, d.decision, "
        "o.card_id AS order_card FROM payments p "
        "JOIN audit_decisions d ON d.order_id = p.order_id JOIN orders o ON o.id = p.order_id "
        "ORDER BY p.attempted_at, p.id",
    )
    assert {p["decision"] for p in payments} == {"approve"}
    assert all(p["card_id"] == p["order_card"] for p in payments)
    by_account: dict[int, list[dict]] = defaultdict(list)
    for p in payments:
        by_account[p["account_id"]].append(p)
    seen = defaultdict(int)
    for account, history in by_account.items():
        running = balance[account]
        assert running >= 0
        for p in reversed(history):  # newest first: undo each charge
            amount = Decimal(str(p["amount"]))
            if p["status"] == "paid":
                running += amount  # now the balance just before this attempt
            attempted = dt.datetime.fromisoformat(str(p["attempted_at"])).date()
            if attempted > expiry[p["card_id"]]:
                expected = "card_expired"
            elif running < amount:
                expected = "insufficient_balance"
            else:
                expected = "paid"
            assert p["status"] == expected, (account, p)
            seen[expected] += 1
    assert set(seen) == {"paid", "insufficient_balance", "card_expired"}


def test_decisions_follow_the_documented_signals() -> None:
    company = build_company(4000, seed=0)
    decided = company.decided
    reject = company.reject & decided
    f = company.features
    quiet = (
        decided
        & ~company.forwarding
        & ~company.resale
        & ~company.urgency
        & ~f.new_account
        & ~f.address_mismatch
        & (f.amount_ratio < 2)
        & (f.velocity_24h <= 2)
    )
    assert reject[quiet].mean() < 0.1  # label noise plus the bias, nothing else
    assert reject[decided & company.resale].mean() > 0.7  # a text-only signal decides alone
    assert (
        reject[decided & (f.amount_ratio > 8)].mean() > reject[decided & (f.amount_ratio < 2)].mean() + 0.25
    )
    # Combinations: each part is common and mostly harmless alone, decisive together.
    large = f.amount_ratio > 2
    for alone, together in (
        (company.urgency & ~f.new_account, company.urgency & f.new_account),
        (company.forwarding & ~large, company.forwarding & large),
        (f.address_mismatch & ~f.new_account, f.address_mismatch & f.new_account),
    ):
        assert reject[decided & together].mean() > reject[decided & alone].mean() + 0.4


def test_label_noise_is_configurable() -> None:
    clean = build_company(2000, seed=0, label_noise=0.0)
    noisy = build_company(2000, seed=0, label_noise=0.2)
    assert not clean.noise_flipped.any()
    assert 0.15 < noisy.noise_flipped.mean() < 0.25
    with pytest.raises(ValueError, match="label_noise"):
        build_company(100, label_noise=0.9)
    with pytest.raises(ValueError, match="at least"):
        build_company(5)


def test_tabular_signals_are_learnable() -> None:
    """A plain logistic regression on the warehouse's tabular features clearly beats chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    company = build_company(3000, seed=1)
    d = company.decided
    f = company.features
    x = np.column_stack(
        [
            np.log2(f.amount_ratio),
            f.new_account,
            f.address_mismatch,
            f.velocity_24h,
        ]
    )[d]
    y = company.reject[d]
    model = LogisticRegression(max_iter=1000).fit(x[:2000], y[:2000])
    assert roc_auc_score(y[2000:], model.predict_proba(x[2000:])[:, 1]) > 0.7


@pytest.mark.slow
def test_100k_orders(tmp_path: Path) -> None:
    """Generates the full 100k size (run with ``-m slow``; speed belongs to ``gpt2-agent demo init``'s
    own report, not to a timed test)."""
    summary = generate_warehouse(_sqlite(tmp_path, "big.db"), orders=100_000, seed=0)
    assert summary.orders == 100_000
