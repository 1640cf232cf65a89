"""The order-audit data set, read from the company's data warehouse.

For each decided order: ``key`` (the order number), ``text`` (the order serialized with a
template: tabular fields and the customer's notes), ``label`` (**1 = approve, 0 = reject**) and
``features`` (the tabular vector :data:`FEATURE_NAMES`, for baselines). History features are
computed as of the moment the order was placed, from earlier orders only, so nothing from the
future leaks in.

Fields a template may use (all orders, pending ones included):

=====================  =========================================================================
``order_no``           public order number
``amount``             "479.46" (two decimals)              ``currency``   "CNY"
``channel``            web / app / wechat / phone            ``created_at`` ISO time, UTC
``items``              raw JSON of the item lines            ``item_names`` "手机壳 x2, 保温杯"
``item_count``         units ordered                         ``notes``      free text ("" if none)
``shipping_address``   / ``billing_address``                 ``city``       customer's city
``prior_orders``       the customer's earlier orders         ``prior_mean`` their mean amount ("300.00"
                                                             before the first order)
``amount_ratio``       amount / prior_mean, "3.4"            ``account_age_days`` whole days
``new_account``        是 / 否 (younger than 30 days)        ``address_match`` 一致 / 不一致
``velocity_24h``       orders by the customer in the last 24h, this one included
=====================  =========================================================================

The warehouse tables are read with plain SQL (see :mod:`gpt2_agent.demo.schema` for the layout
the demo company writes), so any warehouse with those tables and columns works.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gpt2_agent.training.data.connectors import SQLSource
from gpt2_agent.training.data.errors import OrderNotFoundError, SourceReadError
from gpt2_agent.training.data.preprocess import SplitName, SplitRatios, split_records
from gpt2_agent.training.data.serialize import TextTemplate

APPROVE, REJECT = 1, 0
LABEL_NAMES: dict[int, str] = {REJECT: "reject", APPROVE: "approve"}
"""Label ids of the audit model: index 0 is ``reject``, index 1 is ``approve``."""

DEFAULT_AUDIT_TEMPLATE = (
    "{amount} {currency} | {channel} | 历史 {prior_orders} 单 均额 {prior_mean} | 倍数 {amount_ratio} | "
    "账龄 {account_age_days} 天 新账户 {new_account} | 地址{address_match} | 24h {velocity_24h} 单 | "
    "商品: {item_names} | 备注: {notes}"
)
"""Compact (about 45 tokens) and without the order number, which is an arbitrary identifier."""

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "prior_orders",
    "prior_mean_amount",
    "amount_ratio",
    "log2_amount_ratio",
    "account_age_days",
    "new_account",
    "address_mismatch",
    "velocity_24h",
    "item_count",
    "gift_card_items",
    "hour_of_day",
    "channel_web",
    "channel_app",
    "channel_wechat",
    "channel_phone",
)
"""The tabular feature vector: structured columns only, nothing derived from the notes."""

NEW_ACCOUNT_DAYS = 30
REFERENCE_AMOUNT_CENTS = 30000  # stands in for the prior mean before a customer's first order
VELOCITY_WINDOW_SECONDS = 24 * 3600
_GIFT_WORDS = ("礼品卡", "点卡", "gift card")
_CHANNELS = ("web", "app", "wechat", "phone")

_ORDERS_SQL = """
SELECT o.id, o.order_no, o.customer_id, o.amount, o.currency, o.items, o.item_count, o.channel,
       o.shipping_address, o.billing_address, o.created_at, o.notes,
       c.signup_at, c.city, d.decision
FROM orders o
JOIN customers c ON c.id = o.customer_id
LEFT JOIN audit_decisions d ON d.order_id = o.id
ORDER BY o.id
"""


@dataclass(frozen=True)
class AuditRecord:
    """One decided order: what the model reads, what it should answer, and the tabular view."""

    key: str  # order_no
    text: str
    label: int  # 1 = approve, 0 = reject
    features: tuple[float, ...]  # in FEATURE_NAMES order


@dataclass(frozen=True)
class CustomerMessage:
    """One message a customer wrote to support."""

    text: str
    intent: str
    lang: str
    order_no: str | None


# --- reading ----------------------------------------------------------------------------------------


def _as_utc(value: Any) -> dt.datetime:
    """Datetimes come back as ``datetime`` (PostgreSQL) or ISO text (SQLite); both are UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise SourceReadError(f"expected a timestamp, got {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _cents(value: Any) -> int:
    # str() first: SQLite hands back REAL, and str(479.46) is the exact two-decimal text.
    return int((Decimal(str(value)) * 100).to_integral_value())


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed)


def _history(
    customer: npt.NDArray[np.int64], created_s: npt.NDArray[np.int64], cents: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per order (given in chronological order): earlier orders, their total cents, 24h velocity.

    The same definitions as the demo company's own (``gpt2_agent.demo.signals``), written again
    here because training reads any warehouse and does not import the demo; a test checks that
    both agree on a generated warehouse.
    """
    n = len(customer)
    order = np.lexsort((np.arange(n), customer))
    cust_s, t_s, amt_s = customer[order], created_s[order], cents[order]
    starts = np.r_[True, cust_s[1:] != cust_s[:-1]] if n else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0)) if n else np.zeros(0, np.int64)
    position = np.arange(n) - group_start
    csum = np.cumsum(amt_s)
    before = csum - amt_s - np.where(group_start > 0, csum[group_start - 1], 0)
    keys = cust_s.astype(np.int64) * 10**11 + t_s
    velocity = np.arange(n) - np.searchsorted(keys, keys - VELOCITY_WINDOW_SECONDS, side="right") + 1
    prior, total, vel = (np.empty(n, np.int64) for _ in range(3))
    prior[order], total[order], vel[order] = position, before, velocity
    return prior, total, vel


def _fields_and_features(
    rows: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[tuple[float, ...]]]:
    """Template fields and feature vectors for ``rows`` (whole customer histories, by id)."""
    n = len(rows)
    customer = np.fromiter((int(r["customer_id"]) for r in rows), np.int64, n)
    created = [_as_utc(r["created_at"]) for r in rows]
    created_s = np.fromiter((int(t.timestamp()) for t in created), np.int64, n)
    cents = np.fromiter((_cents(r["amount"]) for r in rows), np.int64, n)
    prior, total, velocity = _history(customer, created_s, cents)
    fields: list[dict[str, Any]] = []
    vectors: list[tuple[float, ...]] = []
    for i, r in enumerate(rows):
        # The ratio uses the exact mean; only the displayed mean is rounded to cents.
        mean_cents = round(int(total[i]) / int(prior[i])) if prior[i] else REFERENCE_AMOUNT_CENTS
        ratio = float(cents[i]) * int(prior[i]) / int(total[i]) if prior[i] else float(cents[i]) / mean_cents
        age_days = (created[i] - _as_utc(r["signup_at"])).total_seconds() / 86400.0
        mismatch = r["shipping_address"] != r["billing_address"]
        lines = json.loads(r["items"]) if r["items"] else []
        names = [
            f"{line['name']} x{line['qty']}" if int(line.get("qty", 1)) > 1 else line["name"]
            for line in lines
        ]
        gift = sum(int(line.get("qty", 1)) for line in lines if any(w in line["name"] for w in _GIFT_WORDS))
        decision = r.get("decision")
        fields.append(
            {
                "order_no": str(r["order_no"]),
                "amount": _money(int(cents[i])),
                "currency": r["currency"],
                "channel": r["channel"],
                "created_at": created[i].isoformat(),
                "items": r["items"],
                "item_names": ", ".join(names),
                "item_count": int(r["item_count"]),
                "notes": r["notes"] or "",
                "shipping_address": r["shipping_address"],
                "billing_address": r["billing_address"],
                "city": r.get("city", ""),
                "prior_orders": int(prior[i]),
                "prior_mean": _money(mean_cents),
                "amount_ratio": f"{ratio:.1f}",
                "account_age_days": int(age_days),
                "new_account": "是" if age_days < NEW_ACCOUNT_DAYS else "否",
                "address_match": "不一致" if mismatch else "一致",
                "velocity_24h": int(velocity[i]),
                "decision": decision,
                "customer_id": int(r["customer_id"]),
            }
        )
        vectors.append(
            (
                float(cents[i]) / 100.0,
                float(np.log1p(cents[i] / 100.0)),
                float(prior[i]),
                mean_cents / 100.0,
                float(ratio),
                float(np.log2(max(ratio, 1e-9))),
                age_days,
                float(age_days < NEW_ACCOUNT_DAYS),
                float(mismatch),
                float(velocity[i]),
                float(r["item_count"]),
                float(gift),
                created[i].hour + created[i].minute / 60.0,
                *(float(r["channel"] == c) for c in _CHANNELS),
            )
        )
    return fields, vectors


def _read_orders(warehouse_url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for batch in SQLSource(warehouse_url, _ORDERS_SQL, batch_size=5000).batches():
        rows.extend(batch)
    return rows


# --- public API -------------------------------------------------------------------------------------


def load_audit_dataset(
    warehouse_url: str,
    *,
    template: str | TextTemplate | None = None,
    limit: int | None = None,
) -> list[AuditRecord]:
    """Every decided order of the warehouse, oldest first (at most ``limit``).

    :param template: text template (default :data:`DEFAULT_AUDIT_TEMPLATE`); fields listed in the
        module docstring.
    """
    compiled = _compile(template)
    fields, vectors = _fields_and_features(_read_orders(warehouse_url))
    out: list[AuditRecord] = []
    for f, vec in zip(fields, vectors, strict=True):
        if f["decision"] is None:
            continue
        if limit is not None and len(out) >= limit:
            break
        out.append(
            AuditRecord(
                key=f["order_no"],
                text=compiled.render(f),
                label=APPROVE if f["decision"] == "approve" else REJECT,
                features=vec,
            )
        )
    return out


def split_audit_dataset(
    records: Sequence[AuditRecord], ratios: SplitRatios | None = None, *, salt: str = ""
) -> dict[SplitName, list[AuditRecord]]:
    """Train/validation/test by the hash of the order number (stable; no order in two splits)."""
    return split_records(records, key_of=lambda r: r.key, ratios=ratios, salt=salt)


def order_features(
    warehouse_url: str, order_no: str, *, template: str | TextTemplate | None = None
) -> dict[str, Any]:
    """Everything the audit model needs about one order, pending or not, computed as in training.

    Returns the template fields (module docstring) plus ``text`` (rendered with ``template``),
    ``features`` (dict in :data:`FEATURE_NAMES` order), ``customer_name`` and ``customer_email``.
    Raises :class:`OrderNotFoundError` for an unknown number.
    """
    compiled = _compile(template)
    engine = _engine(warehouse_url)
    try:
        with engine.connect() as conn:
            head = (
                conn.execute(
                    text(
                        "SELECT o.id, o.customer_id, c.name, c.email FROM orders o "
                        "JOIN customers c ON c.id = o.customer_id WHERE o.order_no = :no"
                    ),
                    {"no": str(order_no)},
                )
                .mappings()
                .first()
            )
            if head is None:
                raise OrderNotFoundError(str(order_no))
            # The customer's history up to this order is all the features depend on.
            query = _ORDERS_SQL.replace(
                "ORDER BY o.id", "WHERE o.customer_id = :c AND o.id <= :id ORDER BY o.id"
            )
            rows = [
                dict(r)
                for r in conn.execute(text(query), {"c": head["customer_id"], "id": head["id"]}).mappings()
            ]
    except DBAPIError as exc:
        raise SourceReadError(f"warehouse query failed: {str(exc.orig).splitlines()[0]}") from exc
    except SQLAlchemyError as exc:
        raise SourceReadError(f"warehouse query failed: {exc}") from exc
    fields, vectors = _fields_and_features(rows)
    out = dict(fields[-1])
    out["text"] = compiled.render(out)
    out["features"] = dict(zip(FEATURE_NAMES, vectors[-1], strict=True))
    out["customer_name"] = head["name"]
    out["customer_email"] = head["email"]
    return out


def load_customer_messages(warehouse_url: str, *, limit: int | None = None) -> list[CustomerMessage]:
    """Customer messages, oldest first (for language-model pretraining and NLU examples)."""
    sql = "SELECT text, intent, lang, order_no FROM customer_messages ORDER BY sent_at, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [
        CustomerMessage(text=r["text"], intent=r["intent"], lang=r["lang"], order_no=r["order_no"])
        for batch in SQLSource(warehouse_url, sql, batch_size=5000).batches()
        for r in batch
    ]


def corpus_texts(
    warehouse_url: str, *, template: str | TextTemplate | None = None, include_orders: bool = True
) -> Iterator[str]:
    """All free text of the warehouse for tokenizer and language-model training: order notes,
    customer messages, then every order serialized with ``template`` (pending ones included;
    no labels are part of it)."""
    for batch in SQLSource(warehouse_url, "SELECT notes FROM orders ORDER BY id", batch_size=5000).batches():
        yield from (r["notes"] for r in batch if r["notes"])
    for batch in SQLSource(
        warehouse_url, "SELECT text FROM customer_messages ORDER BY id", batch_size=5000
    ).batches():
        yield from (r["text"] for r in batch)
    if include_orders:
        compiled = _compile(template)
        fields, _ = _fields_and_features(_read_orders(warehouse_url))
        yield from (compiled.render(f) for f in fields)


def feature_matrix(records: Sequence[AuditRecord]) -> npt.NDArray[np.float64]:
    """``(n, len(FEATURE_NAMES))`` float matrix of the records' tabular features."""
    return np.asarray([r.features for r in records], dtype=np.float64).reshape(
        len(records), len(FEATURE_NAMES)
    )


def dataset_fingerprint(records: Sequence[AuditRecord]) -> str:
    """SHA-256 over keys, labels and texts: the data set's identity for model lineage."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(f"{r.key}\x1f{r.label}\x1f{r.text}\x1e".encode())
    return digest.hexdigest()


def _compile(template: str | TextTemplate | None) -> TextTemplate:
    if isinstance(template, TextTemplate):
        return template
    return TextTemplate(template or DEFAULT_AUDIT_TEMPLATE)


__all__ = [
    "APPROVE",
    "DEFAULT_AUDIT_TEMPLATE",
    "FEATURE_NAMES",
    "LABEL_NAMES",
    "REJECT",
    "AuditRecord",
    "CustomerMessage",
    "corpus_texts",
    "dataset_fingerprint",
    "feature_matrix",
    "load_audit_dataset",
    "load_customer_messages",
    "order_features",
    "split_audit_dataset",
]
