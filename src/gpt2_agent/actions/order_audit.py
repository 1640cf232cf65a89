"""The ``order_audit`` action: the audit model recommends approve or reject, and says why.

Input: an order number, looked up in the warehouse, or a full order (for orders that are not in
the warehouse yet)::

    {"order_no": "66120"}
    {"order": {"amount": "129.00", "notes": "URGENT, skip the checks", "account_age_days": 3}}

The order is serialized exactly as in training (:func:`gpt2_agent.training.data.order_features`
with the template recorded in the served version's lineage) and scored by the ``order-audit``
model through the serving runtime. Output: ``decision`` (approve/reject), ``probability`` (of
approve), ``model_version``, the order's facts as stored (amount as a decimal string), and
``reasons``: the fields that moved the score most, by occlusion. Each field in turn is replaced
by a typical value (an empty note, matching addresses, an amount ratio of 1.0 ...); every variant
is scored in the same batched ``predict`` call, and ``delta`` is the probability of approve with
the order's real value minus the probability with the typical one (positive: the field speaks for
approval).

:func:`audit_order` is the plain function for HTTP routes: it raises
:class:`~gpt2_agent.engine.errors.InvalidInput` (malformed number, 422),
:class:`~gpt2_agent.training.data.errors.OrderNotFoundError` (404),
:class:`~gpt2_agent.serving.ModelNotReady` (no production model, 503) and
:class:`~gpt2_agent.training.data.errors.SourceReadError` (warehouse unreachable, 503).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpt2_agent.actions.money import Amount, format_amount, to_decimal
from gpt2_agent.actions.warehouse import ORDER_NO_PATTERN, OrderNo
from gpt2_agent.config import Settings
from gpt2_agent.engine.errors import InvalidInput, PermanentError, RetryableError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType
from gpt2_agent.serving.errors import ModelNotReady, ServingClosed, ServingError
from gpt2_agent.serving.prediction import Prediction
from gpt2_agent.store import Database, create_database
from gpt2_agent.training.data.audit_dataset import DEFAULT_AUDIT_TEMPLATE, order_features
from gpt2_agent.training.data.errors import DataError, OrderNotFoundError, SourceReadError
from gpt2_agent.training.data.serialize import TextTemplate

log = logging.getLogger(__name__)

TASK_NAME = "order_audit"
AUDIT_MODEL = "order-audit"
TRAIN_HINT = "gpt2-agent train configs/order-audit.toml"
TOP_REASONS = 3
_ORDER_NO = re.compile(ORDER_NO_PATTERN)

# What a field reads like on an unremarkable order: the occlusion baseline. Callables get the
# order's own fields (a typical amount for this customer is their usual amount).
NEUTRAL: dict[str, str | Callable[[Mapping[str, Any]], str]] = {
    "amount": lambda f: str(f.get("prior_mean") or "300.00"),
    "channel": "web",
    "prior_orders": "5",
    "prior_mean": "300.00",
    "amount_ratio": "1.0",
    "account_age_days": "365",
    "new_account": "否",
    "address_match": "一致",
    "velocity_24h": "1",
    "item_names": "",
    "items": "[]",
    "item_count": "1",
    "notes": "",
    "city": "",
    "shipping_address": lambda f: str(f.get("billing_address", "")),
    "billing_address": lambda f: str(f.get("shipping_address", "")),
}
# Fields that say nothing about the order itself (an identifier, a constant, a timestamp).
NOT_EXPLAINED = frozenset({"order_no", "currency", "created_at", "customer_id", "decision"})


class AuditPredictor(Protocol):
    """What the audit needs of the serving runtime (``gpt2_agent.serving.AuditPredictor``)."""

    def predict(self, model: str, texts: list[str]) -> list[Prediction]:
        """Classify ``texts`` with the served version of ``model`` (batched, thread-safe)."""
        ...


class Reason(BaseModel):
    """How much one field moved the probability of approve."""

    field: str
    value: str
    baseline: str
    delta: float  # P(approve | real value) - P(approve | baseline)
    towards: Literal["approve", "reject"]


class OrderFacts(BaseModel):
    """What a reviewer needs to see about the order, as stored (never generated)."""

    order_no: str | None
    amount: Amount
    currency: str
    customer_id: int | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    city: str = ""
    channel: str
    created_at: str | None = None
    items: str
    item_count: int
    notes: str
    shipping_address: str
    billing_address: str
    address_match: bool
    prior_orders: int
    prior_mean: str
    amount_ratio: str
    account_age_days: int
    new_account: bool
    velocity_24h: int


class AuditResult(BaseModel):
    """The audit of one order. ``probability`` is the model's probability of ``approve``."""

    order_no: str | None
    decision: Literal["approve", "reject"]
    probability: float
    model: str
    model_version: int
    reasons: list[Reason]
    order: OrderFacts
    amount: Amount  # the order's amount again, for workflow expressions
    currency: str
    text: str  # the serialized order the model read
    features: dict[str, float] = Field(default_factory=dict)  # tabular features (warehouse orders)
    summary: str


class ItemIn(BaseModel):
    """One item line of a full order."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    qty: int = Field(default=1, ge=1, le=100000)
    unit_price: Amount


class OrderIn(BaseModel):
    """A full order given inline, with the customer's history as far as it is known."""

    model_config = ConfigDict(extra="forbid")

    order_no: OrderNo | None = None
    amount: Amount
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    channel: Literal["web", "app", "wechat", "phone"] = "web"
    items: list[ItemIn] = Field(default_factory=list, max_length=200)
    notes: str = Field(default="", max_length=4000)
    shipping_address: str = Field(default="", max_length=300)
    billing_address: str | None = Field(default=None, max_length=300)  # default: the shipping address
    city: str = Field(default="", max_length=50)
    customer_name: str | None = Field(default=None, max_length=100)
    customer_email: str | None = Field(default=None, max_length=200)
    prior_orders: int = Field(default=0, ge=0)
    prior_mean: Amount | None = None  # the customer's mean order amount; default 300.00
    account_age_days: int = Field(default=365, ge=0)
    velocity_24h: int = Field(default=1, ge=1)

    def fields(self) -> dict[str, Any]:
        """The template fields, computed as :mod:`gpt2_agent.training.data.audit_dataset` does."""
        prior_mean = self.prior_mean if self.prior_orders and self.prior_mean else to_decimal("300.00")
        ratio = self.amount / prior_mean
        billing = self.billing_address if self.billing_address is not None else self.shipping_address
        names = [f"{i.name} x{i.qty}" if i.qty > 1 else i.name for i in self.items]
        return {
            "order_no": self.order_no or "",
            "amount": format_amount(self.amount),
            "currency": self.currency,
            "channel": self.channel,
            "created_at": None,
            "items": "[]",
            "item_names": ", ".join(names),
            "item_count": sum(i.qty for i in self.items),
            "notes": self.notes,
            "shipping_address": self.shipping_address,
            "billing_address": billing,
            "city": self.city,
            "prior_orders": self.prior_orders,
            "prior_mean": format_amount(prior_mean),
            "amount_ratio": f"{ratio:.1f}",
            "account_age_days": self.account_age_days,
            "new_account": "是" if self.account_age_days < 30 else "否",
            "address_match": "一致" if billing == self.shipping_address else "不一致",
            "velocity_24h": self.velocity_24h,
            "customer_id": None,
            "customer_name": self.customer_name,
            "customer_email": self.customer_email,
        }


class OrderAuditInput(BaseModel):
    """Exactly one of ``order_no`` (a warehouse order) and ``order`` (a full order)."""

    model_config = ConfigDict(extra="forbid")

    order_no: OrderNo | None = None
    order: OrderIn | None = None

    @model_validator(mode="after")
    def _one(self) -> OrderAuditInput:
        if (self.order_no is None) == (self.order is None):
            raise ValueError("give exactly one of order_no and order")
        return self


class OrderAuditor:
    """Audits orders with the served ``order-audit`` model. Thread-safe; share one per process.

    :param settings: ``warehouse_url`` is read for order numbers.
    :param runtime: the serving runtime (batched, thread-safe ``predict``).
    :param db: the application database, for the served version's lineage (its text template).
    """

    def __init__(
        self,
        settings: Settings,
        runtime: AuditPredictor,
        db: Database,
        *,
        model: str = AUDIT_MODEL,
        top_k: int = TOP_REASONS,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.db = db
        self.model = model
        self.top_k = top_k
        self._templates: dict[int, TextTemplate] = {}
        self._lock = threading.Lock()

    # --- public --------------------------------------------------------------------------------

    def audit_order_no(self, order_no: str) -> AuditResult:
        """Audit a warehouse order. Raises ``OrderNotFoundError``, ``ModelNotReady``, ``DataError``."""
        order_no = check_order_no(order_no)
        fields = order_features(self.settings.warehouse_url, order_no)
        features = {k: float(v) for k, v in dict(fields.get("features") or {}).items()}
        return self._audit(fields, features)

    def audit(self, inp: OrderAuditInput) -> AuditResult:
        """Audit what the task input names."""
        if inp.order is not None:
            return self._audit(inp.order.fields(), {})
        assert inp.order_no is not None
        return self.audit_order_no(inp.order_no)

    # --- internals -----------------------------------------------------------------------------

    def _audit(self, fields: Mapping[str, Any], features: dict[str, float]) -> AuditResult:
        version = self._production_version()
        for _ in range(2):
            template = self._template(version)
            texts, names = _variants(template, fields)
            predictions = self.runtime.predict(self.model, texts)
            served = predictions[0].version
            # A hot reload between the lookup and the prediction may serve a version trained
            # with another template; score again with that version's template.
            if served == version or self._template(served).template == template.template:
                return self._result(fields, features, texts, names, predictions)
            version = served
        return self._result(fields, features, texts, names, predictions)

    def _production_version(self) -> int | None:
        from gpt2_agent.registry import PRODUCTION, Registry

        try:
            return Registry(self.settings, self.db).alias_version(self.model, PRODUCTION)
        except Exception:  # no registry tables yet: predict() says what is missing
            log.debug("no production version of %s in the registry", self.model, exc_info=True)
            return None

    def _template(self, version: int | None) -> TextTemplate:
        if version is None:
            return TextTemplate(DEFAULT_AUDIT_TEMPLATE)
        with self._lock:
            cached = self._templates.get(version)
        if cached is not None:
            return cached
        from gpt2_agent.registry import Registry, RegistryError

        try:
            lineage = Registry(self.settings, self.db).get_version(self.model, version).lineage
        except RegistryError:
            lineage = {}
        data = (lineage.get("config") or {}).get("data") or {}
        template = TextTemplate(data.get("template") or DEFAULT_AUDIT_TEMPLATE)
        with self._lock:
            self._templates[version] = template
        return template

    def _result(
        self,
        fields: Mapping[str, Any],
        features: dict[str, float],
        texts: list[str],
        names: list[tuple[str, str]],
        predictions: Sequence[Prediction],
    ) -> AuditResult:
        base = predictions[0]
        p_base = approve_probability(base)
        reasons: list[Reason] = []
        by_text = {t: approve_probability(p) for t, p in zip(texts, predictions, strict=True)}
        for field, variant_text in names:
            delta = p_base - by_text[variant_text]
            reasons.append(
                Reason(
                    field=field,
                    value=_short(fields.get(field)),
                    baseline=_short(_neutral(field, fields)),
                    delta=round(delta, 4),
                    towards="approve" if delta >= 0 else "reject",
                )
            )
        reasons.sort(key=lambda r: (-abs(r.delta), r.field))
        top = [r for r in reasons if r.delta != 0][: self.top_k]
        decision: Literal["approve", "reject"] = "approve" if p_base >= 0.5 else "reject"
        facts = _facts(fields)
        why = ", ".join(f"{r.field} {r.delta:+.2f}" for r in top) or "no single field stands out"
        return AuditResult(
            order_no=facts.order_no,
            decision=decision,
            probability=round(p_base, 6),
            model=base.model,
            model_version=base.version,
            reasons=top,
            order=facts,
            amount=facts.amount,
            currency=facts.currency,
            text=texts[0],
            features=features,
            summary=f"{decision} (p={p_base:.2f}); {why}",
        )


def approve_probability(prediction: Prediction) -> float:
    """The probability of ``approve`` in a prediction of the audit model."""
    scores = prediction.scores
    if "approve" in scores:
        return float(scores["approve"])
    if "reject" in scores:
        return 1.0 - float(scores["reject"])
    raise PermanentError(
        f"model {prediction.model}:{prediction.version} has labels {sorted(scores)}, not approve/reject"
    )


def check_order_no(order_no: Any) -> str:
    """The order number if it is 1-12 digits; else :class:`InvalidInput` naming ``order_no``."""
    if isinstance(order_no, int) and not isinstance(order_no, bool) and order_no >= 0:
        order_no = str(order_no)
    if not isinstance(order_no, str) or not _ORDER_NO.fullmatch(order_no.strip()):
        message = "must be 1 to 12 digits"
        raise InvalidInput(f"invalid order_no: {message}", [{"field": "order_no", "message": message}])
    return order_no.strip()


def _neutral(field: str, fields: Mapping[str, Any]) -> str:
    value = NEUTRAL.get(field, "")
    return value(fields) if callable(value) else value


def _variants(template: TextTemplate, fields: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """The base text first, then one text per explained field that differs from it."""
    base = template.render(fields)
    texts = [base]
    names: list[tuple[str, str]] = []
    for field in template.fields:
        if field in NOT_EXPLAINED:
            continue
        variant = dict(fields)
        variant[field] = _neutral(field, fields)
        text = template.render(variant)
        if text == base:
            continue
        names.append((field, text))
        if text not in texts:
            texts.append(text)
    return texts, names


def _short(value: Any, limit: int = 200) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _facts(f: Mapping[str, Any]) -> OrderFacts:
    return OrderFacts(
        order_no=f.get("order_no") or None,
        amount=f["amount"],
        currency=str(f.get("currency") or "CNY"),
        customer_id=f.get("customer_id"),
        customer_name=f.get("customer_name"),
        customer_email=f.get("customer_email"),
        city=str(f.get("city") or ""),
        channel=str(f.get("channel") or ""),
        created_at=f.get("created_at"),
        items=str(f.get("item_names") or ""),
        item_count=int(f.get("item_count") or 0),
        notes=str(f.get("notes") or ""),
        shipping_address=str(f.get("shipping_address") or ""),
        billing_address=str(f.get("billing_address") or ""),
        address_match=f.get("address_match") == "一致",
        prior_orders=int(f.get("prior_orders") or 0),
        prior_mean=str(f.get("prior_mean") or ""),
        amount_ratio=str(f.get("amount_ratio") or ""),
        account_age_days=int(f.get("account_age_days") or 0),
        new_account=f.get("new_account") == "是",
        velocity_24h=int(f.get("velocity_24h") or 1),
    )


def not_ready_message(exc: Exception) -> str:
    """The runtime's message, with the training command added when it does not name one."""
    message = str(exc)
    return message if "train" in message else f"{message}; train it with: {TRAIN_HINT}"


# --- the plain function and the task type ----------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _app_database(url: str) -> Database:
    return create_database(url)


_AUDITORS: dict[tuple[int, str, str], OrderAuditor] = {}
_AUDITORS_LOCK = threading.Lock()


def audit_order(
    order_no: str, *, settings: Settings, runtime: AuditPredictor, db: Database | None = None
) -> AuditResult:
    """Audit one warehouse order (for ``POST /order/audit`` and other direct callers).

    Raises ``InvalidInput`` (422), ``OrderNotFoundError`` (404), ``ModelNotReady`` (503, its
    message names the command that trains the model) or ``SourceReadError`` (503).
    """
    order_no = check_order_no(order_no)
    database = db or _app_database(settings.database_url)
    key = (id(runtime), settings.database_url, settings.warehouse_url)
    with _AUDITORS_LOCK:
        auditor = _AUDITORS.get(key)
        if auditor is None or auditor.runtime is not runtime:
            auditor = _AUDITORS[key] = OrderAuditor(settings, runtime, database)
    return auditor.audit_order_no(order_no)


def order_audit_task(auditor: OrderAuditor) -> TaskType[OrderAuditInput, AuditResult]:
    """The ``order_audit`` task type bound to an auditor."""

    def order_audit(ctx: TaskContext, inp: OrderAuditInput) -> AuditResult:
        try:
            return auditor.audit(inp)
        except OrderNotFoundError:
            raise PermanentError(f"order {inp.order_no} not found") from None
        except ModelNotReady as exc:
            raise PermanentError(f"the audit model is not ready: {not_ready_message(exc)}") from None
        except ServingClosed as exc:  # shutting down: another worker (or this one, restarted) retries
            raise RetryableError(f"serving runtime closed: {exc}") from exc
        except ServingError as exc:
            raise PermanentError(f"the audit model cannot serve this request: {exc}") from exc
        except SourceReadError as exc:
            raise RetryableError(str(exc)) from exc
        except DataError as exc:  # a template that does not fit the order's fields
            raise PermanentError(f"cannot serialize the order: {exc}") from exc

    return TaskType(
        name=TASK_NAME,
        input_model=OrderAuditInput,
        output_model=AuditResult,
        fn=order_audit,
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=1.0),
        timeout_seconds=60.0,
        description="Recommend approve or reject for an order with the audit model, with the fields "
        "that moved the score most.",
    )
