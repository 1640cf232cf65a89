"""The order-audit data set read back from a generated warehouse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from gpt2_agent.demo import generate_warehouse
from gpt2_agent.demo.company import build_company
from gpt2_agent.training.data import (
    APPROVE,
    FEATURE_NAMES,
    LABEL_NAMES,
    REJECT,
    MissingFieldError,
    OrderNotFoundError,
    corpus_texts,
    dataset_fingerprint,
    feature_matrix,
    load_audit_dataset,
    load_customer_messages,
    order_features,
    split_audit_dataset,
)

ORDERS = 800


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'warehouse.db'}"
    generate_warehouse(url, orders=ORDERS, seed=5)
    return url


def _decisions(url: str) -> dict[str, str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT order_no, decision FROM audit_decisions")).all()
    engine.dispose()
    return dict(rows)  # type: ignore[arg-type]


def test_records_carry_key_text_label_and_features(warehouse: str) -> None:
    records = load_audit_dataset(warehouse)
    decisions = _decisions(warehouse)
    assert LABEL_NAMES == {0: "reject", 1: "approve"} and (APPROVE, REJECT) == (1, 0)
    assert len(records) == len(decisions)
    assert all(r.label == (APPROVE if decisions[r.key] == "approve" else REJECT) for r in records)
    assert {r.label for r in records} == {0, 1}
    assert all(len(r.features) == len(FEATURE_NAMES) for r in records)
    with_notes = [r for r in records if not r.text.endswith("备注: ")]
    assert with_notes and all("CNY" in r.text and "倍数" in r.text for r in records)
    assert feature_matrix(records).shape == (len(records), len(FEATURE_NAMES))
    assert len(load_audit_dataset(warehouse, limit=10)) == 10


def test_features_match_what_the_reviewers_saw(warehouse: str) -> None:
    """The loader recomputes history features from the tables exactly as the company did."""
    company = build_company(ORDERS, seed=5)
    x = feature_matrix(load_audit_dataset(warehouse))
    f = company.features
    d = company.decided
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    np.testing.assert_allclose(x[:, col["amount_ratio"]], f.amount_ratio[d], rtol=1e-9)
    np.testing.assert_array_equal(x[:, col["prior_orders"]], f.prior_orders[d])
    np.testing.assert_array_equal(x[:, col["velocity_24h"]], f.velocity_24h[d])
    np.testing.assert_array_equal(x[:, col["new_account"]].astype(bool), f.new_account[d])
    np.testing.assert_array_equal(x[:, col["address_mismatch"]].astype(bool), f.address_mismatch[d])


def test_order_features_for_serving_matches_training(warehouse: str) -> None:
    records = {r.key: r for r in load_audit_dataset(warehouse)}
    some = list(records)[len(records) // 2]
    served = order_features(warehouse, some)
    assert served["text"] == records[some].text
    assert tuple(served["features"].values()) == pytest.approx(records[some].features)
    assert served["decision"] in ("approve", "reject")
    pending = order_features(warehouse, "66120")
    assert pending["decision"] is None and pending["order_no"] == "66120"
    assert pending["customer_email"].endswith(("example.com", "example.cn", "example.net", "example.org"))
    risky = order_features(warehouse, "12345", template="{order_no}: {notes}")
    assert risky["text"].startswith("12345: ")
    with pytest.raises(OrderNotFoundError, match="99999999"):
        order_features(warehouse, "99999999")


def test_templates_are_configurable_and_checked(warehouse: str) -> None:
    records = load_audit_dataset(warehouse, template="订单号: {order_no} 金额: {amount}", limit=3)
    assert all(r.text.startswith(f"订单号: {r.key} 金额: ") and "." in r.text for r in records)
    with pytest.raises(MissingFieldError, match="risk_score"):
        load_audit_dataset(warehouse, template="{risk_score}", limit=1)


def test_split_keeps_every_order_in_one_split(warehouse: str) -> None:
    records = load_audit_dataset(warehouse)
    first = split_audit_dataset(records)
    again = split_audit_dataset(list(reversed(records)))
    for name in first:
        assert {r.key for r in first[name]} == {r.key for r in again[name]}
    train, val, test = ({r.key for r in first[n]} for n in ("train", "validation", "test"))
    assert not (train & val or train & test or val & test)
    assert len(train) > len(test) > 0


def test_fingerprint_identifies_the_data(warehouse: str) -> None:
    a = dataset_fingerprint(load_audit_dataset(warehouse))
    assert a == dataset_fingerprint(load_audit_dataset(warehouse))
    assert a != dataset_fingerprint(load_audit_dataset(warehouse, limit=100))


def test_messages_and_corpus(warehouse: str) -> None:
    messages = load_customer_messages(warehouse)
    assert any(m.text == "帮我审核一下订单 66120" and m.intent == "order_audit" for m in messages)
    assert {m.lang for m in messages} == {"zh", "en", "mixed"}
    assert len(load_customer_messages(warehouse, limit=5)) == 5
    corpus = list(corpus_texts(warehouse))
    assert "did the payment for 77410 go through?" in corpus
    assert sum("CNY |" in t for t in corpus) == ORDERS  # every order serialized once, pending included
    assert len(list(corpus_texts(warehouse, include_orders=False))) == len(corpus) - ORDERS


def test_reads_a_postgres_warehouse(db_url: str, tmp_path: Path) -> None:
    generate_warehouse(db_url, orders=120, seed=2)
    reference = f"sqlite:///{tmp_path / 'w.db'}"
    generate_warehouse(reference, orders=120, seed=2)
    assert load_audit_dataset(db_url) == load_audit_dataset(reference)
    assert order_features(db_url, "77410")["text"] == order_features(reference, "77410")["text"]
