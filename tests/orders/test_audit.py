"""``order_audit`` and ``audit_order``: decision, reasons by occlusion, facts, and bad input."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from gpt2_agent.actions.order_audit import (
    AuditResult,
    OrderAuditInput,
    OrderAuditor,
    approve_probability,
    audit_order,
    order_audit_task,
)
from gpt2_agent.config import Settings
from gpt2_agent.engine.errors import InvalidInput, PermanentError
from gpt2_agent.engine.handlers import TaskContext
from gpt2_agent.registry import Registry
from gpt2_agent.serving import ModelNotReady, Prediction, ServingRuntime
from gpt2_agent.store import create_database, upgrade
from gpt2_agent.training.data.audit_dataset import DEFAULT_AUDIT_TEMPLATE, order_features
from gpt2_agent.training.data.errors import OrderNotFoundError
from gpt2_agent.training.data.serialize import TextTemplate
from tests.orders.conftest import OrderEnv

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
BAD_NUMBERS = ["", " ", "12a", "1234567890123", "-1", "12.5", "１２３", "66120\n1", "66 120"]


class CountingRuntime:
    """Passes through to the real runtime and remembers every predict call."""

    def __init__(self, inner: ServingRuntime) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    def predict(self, model: str, texts: Sequence[str]) -> list[Prediction]:
        self.calls.append(list(texts))
        return self.inner.predict(model, texts)


def _ctx() -> TaskContext:
    return TaskContext(task_id=1, attempt=1, idempotency_key="run:1:audit")


@SQLITE_ONLY
def test_audit_explains_with_one_batched_prediction(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    counting = CountingRuntime(env.runtime)
    result = OrderAuditor(env.settings, counting, env.db).audit_order_no("66120")

    # One predict call carries the order and every occluded variant.
    assert len(counting.calls) == 1
    texts = counting.calls[0]
    assert texts[0] == result.text and len(texts) > 3
    # The text is the training serialization of the order.
    fields = order_features(env.settings.warehouse_url, "66120")
    assert result.text == fields["text"]

    assert result.model == "order-audit" and result.model_version == env.model_version
    assert result.decision == ("approve" if result.probability >= 0.5 else "reject")
    [base] = env.runtime.predict("order-audit", [result.text])
    assert result.probability == pytest.approx(approve_probability(base), abs=1e-5)

    order = env.warehouse.order("66120")
    assert result.amount == order.amount and isinstance(result.amount, Decimal)
    assert result.order.customer_email == order.customer_email
    assert result.order.customer_name == order.customer_name
    dumped = result.model_dump(mode="json")
    assert dumped["amount"] == f"{order.amount:.2f}" and dumped["order"]["amount"] == f"{order.amount:.2f}"
    assert set(result.features) >= {"amount", "account_age_days", "velocity_24h"}

    # Reasons: at most three, strongest first, signed, and true to the model.
    assert 1 <= len(result.reasons) <= 3
    deltas = [abs(r.delta) for r in result.reasons]
    assert deltas == sorted(deltas, reverse=True) and all(d > 0 for d in deltas)
    for reason in result.reasons:
        assert reason.towards == ("approve" if reason.delta > 0 else "reject")
        assert reason.value != reason.baseline
    top = result.reasons[0]
    variant = dict(fields)
    variant[top.field] = top.baseline
    [occluded] = env.runtime.predict("order-audit", [TextTemplate(DEFAULT_AUDIT_TEMPLATE).render(variant)])
    expected = approve_probability(base) - approve_probability(occluded)
    assert top.delta == pytest.approx(expected, abs=1e-3)
    assert result.summary.startswith(result.decision)


@SQLITE_ONLY
def test_audit_a_full_order_and_the_task_type(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    task = env.engine.handlers.get("order_audit")
    inp = task.parse_input(
        {
            "order": {
                "amount": "1299.00",
                "notes": "URGENT, ship today, skip the checks",
                "shipping_address": "深圳市南山区科技园1号",
                "billing_address": "北京市朝阳区建国路8号",
                "items": [{"name": "手机", "qty": 1, "unit_price": "1299.00"}],
                "account_age_days": 2,
                "velocity_24h": 3,
            }
        }
    )
    result = task.fn(_ctx(), inp)
    assert isinstance(result, AuditResult)
    assert result.order_no is None and result.amount == Decimal("1299.00")
    assert result.order.address_match is False and result.order.new_account is True
    assert "不一致" in result.text and "URGENT" in result.text
    assert result.reasons and result.features == {}
    with pytest.raises(InvalidInput):
        task.parse_input({"order_no": "66120", "order": {"amount": "1.00"}})
    with pytest.raises(InvalidInput):
        task.parse_input({})


@SQLITE_ONLY
def test_bad_and_unknown_order_numbers(make_env: Callable[..., OrderEnv]) -> None:
    env = make_env()
    task = env.engine.handlers.get("order_audit")
    for bad in BAD_NUMBERS:
        with pytest.raises(InvalidInput) as caught:
            task.parse_input({"order_no": bad})
        assert caught.value.errors[0]["field"] == "order_no", bad
        with pytest.raises(InvalidInput) as caught:
            audit_order(bad, settings=env.settings, runtime=env.runtime, db=env.db)
        assert caught.value.errors == [{"field": "order_no", "message": "must be 1 to 12 digits"}]
    with pytest.raises(OrderNotFoundError):
        audit_order("999999999", settings=env.settings, runtime=env.runtime, db=env.db)
    with pytest.raises(PermanentError, match="order 999999999 not found"):
        task.fn(_ctx(), task.parse_input({"order_no": "999999999"}))
    # The plain function for HTTP routes gives the same answer as the task.
    direct = audit_order("66120", settings=env.settings, runtime=env.runtime)
    via_task = task.fn(_ctx(), task.parse_input({"order_no": "66120"}))
    assert direct.model_dump() == via_task.model_dump()


@SQLITE_ONLY
def test_model_not_ready_names_the_training_command(
    settings: Settings, warehouse_url: str, tmp_path: Path
) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade(db)
    s = settings.model_copy(update={"warehouse_url": warehouse_url})
    runtime = ServingRuntime(s, Registry(s, db), reload_interval_s=0)
    try:
        with pytest.raises(ModelNotReady, match="train"):
            audit_order("66120", settings=s, runtime=runtime, db=db)
        task = order_audit_task(OrderAuditor(s, runtime, db))
        with pytest.raises(PermanentError, match=r"not ready.*train"):
            task.fn(_ctx(), OrderAuditInput(order_no="66120"))
    finally:
        runtime.close()
        db.dispose()
