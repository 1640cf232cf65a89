"""The demo company's data warehouse: a synthetic shop whose past order audits a model can learn.

Usage::

    from gpt2_agent.demo import generate_warehouse
    summary = generate_warehouse("sqlite:///warehouse.db", orders=20000, seed=0)

The same ``seed`` (and ``label_noise``) always writes the same rows; :func:`warehouse_digest`
hashes them. 100k orders take a few seconds. Tables and columns: :mod:`gpt2_agent.demo.schema`.

How reviewers decided (the hidden policy)
-----------------------------------------
Each decided order gets a reject log-odds ``z`` (weights: :class:`~gpt2_agent.demo.signals.SignalWeights`),
is rejected with probability ``sigmoid(z)``, and then a share ``label_noise`` (default 5%) of all
decisions is flipped at random. ``approve`` is therefore mostly, not always, the low-risk call.

==================================  ======  ==================================================
signal                              weight  where a model can see it
==================================  ======  ==================================================
bias                                -4.5
amount vs. own history              +1.5    tabular: per doubling of ``amount / prior_mean``
                                            above 2x, capped at 16x; ``prior_mean`` is the
                                            customer's mean of earlier orders, 300 CNY before
                                            their first one
new account (< 30 days)             +0.5    tabular: order time minus ``customers.signup_at``
billing != shipping address         +0.5    tabular: ``orders.billing_address``/``shipping_address``
... on a new account                +3.5    tabular x tabular
order velocity                      +0.8    tabular: per order beyond 2 by the customer in the
                                            last 24h (this one included), capped at 3
forwarding-service request          -1.0    text only: the note asks to re-route delivery to a
                                            forwarding / 转运 / 集运 warehouse (the address
                                            columns do not change)
... on an amount above 2x history   +6.5    text x tabular
gift-card resale wording            +6.0    text only: the cards are for resale / 转卖
urgency pressure                    -1.5    text only: "URGENT, skip the checks", "马上发货，别审核"
... on a new account                +7.0    text x tabular
==================================  ======  ==================================================

Most of the risk sits in combinations. A forwarding request or an urgent note is common and,
alone, even a mild good sign (regular customers who ship through their usual forwarder, or
chase a late parcel, get approved), yet decisive together with a large amount or a brand-new
account. Notes also carry harmless lookalikes of the text signals (``不需要转运``, "gift card
for my sister", "no rush") so a keyword alone does not decide, and ordinary delivery remarks.
About 10% of customers are latently risky (they sign up recently, order in bursts, spike their
amounts, ship elsewhere and write risky notes more often), but the policy only ever looks at
the signals above.

What follows for models: a tabular model cannot see the text-only signals; a linear
bag-of-words model over the serialized order cannot express "A only together with B"; a model
that reads the whole serialized order (fields and notes) and combines what it reads can reach
the policy, up to the label noise.

Payments
--------
Approved orders are charged 1-30 minutes after the decision, per account in time order, with
the order's card: ``card_expired`` if the card's ``expires_on`` has passed, else
``insufficient_balance`` if the account balance is below the amount, else ``paid`` (and the
balance drops). ``accounts.balance`` is the balance after all of that, so replaying
``payments`` backwards from it reproduces every outcome. Orders decided too recently are not
charged yet, and orders placed shortly before the warehouse's "now" (``AS_OF``) are pending audit.

Showcase orders
---------------
``66120``: pending audit, the lowest-risk pending order whose card is valid and whose balance
covers it. ``12345``: pending audit, the riskiest pending order, with a note asking to ship to a
forwarding warehouse.
``77410``: approved and paid. Customer messages include "帮我审核一下订单 66120", "did the
payment for 77410 go through?" and "please audit order 12345".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, select
from sqlalchemy.engine import make_url

from gpt2_agent.demo import schema
from gpt2_agent.demo.company import AS_OF, SHOWCASE_ORDERS, Company, build_company
from gpt2_agent.demo.signals import SignalWeights

logger = logging.getLogger(__name__)

_BATCH = 5000


@dataclass(frozen=True)
class WarehouseSummary:
    """What :func:`generate_warehouse` wrote."""

    url: str
    seed: int
    label_noise: float
    as_of: str
    customers: int
    cards: int
    expired_cards: int
    orders: int
    approved: int
    rejected: int
    pending: int
    payments: dict[str, int]
    messages: int
    showcase_orders: tuple[str, ...]
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        out = asdict(self)
        out["showcase_orders"] = list(self.showcase_orders)
        return out


def _money(cents: int) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def _ts(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC)


def _rows(co: Company) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, keyed by table name, ids starting at 1."""
    customers = [
        {
            "id": c + 1,
            "name": co.customer_name[c],
            "email": co.customer_email[c],
            "city": co.customer_city[c],
            "address": co.customer_address[c],
            "signup_at": _ts(co.signup_s[c]),
        }
        for c in range(len(co.customer_name))
    ]
    accounts = [
        {
            "id": c + 1,
            "customer_id": c + 1,
            "currency": "CNY",
            "balance": _money(co.balance_cents[c]),
            "opened_at": _ts(co.signup_s[c]),
        }
        for c in range(len(co.customer_name))
    ]
    cards = [
        {
            "id": k + 1,
            "customer_id": int(co.card_customer[k]) + 1,
            "account_id": int(co.card_customer[k]) + 1,
            "brand": co.card_brand[k],
            "last4": co.card_last4[k],
            "expires_on": co.card_expires[k],
        }
        for k in range(len(co.card_brand))
    ]
    orders = [
        {
            "id": i + 1,
            "order_no": co.order_no[i],
            "customer_id": int(co.order_customer[i]) + 1,
            "card_id": int(co.order_card[i]) + 1,
            "amount": _money(co.amount_cents[i]),
            "currency": "CNY",
            "items": co.items[i],
            "item_count": int(co.item_count[i]),
            "channel": co.channel[i],
            "shipping_address": co.shipping_address[i],
            "billing_address": co.billing_address[i],
            "created_at": _ts(co.created_s[i]),
            "notes": co.notes[i],
        }
        for i in range(len(co.order_no))
    ]
    decisions: list[dict[str, Any]] = []
    for i in range(len(co.order_no)):
        if co.decided[i]:
            decisions.append(
                {
                    "id": len(decisions) + 1,
                    "order_id": i + 1,
                    "order_no": co.order_no[i],
                    "decision": "reject" if co.reject[i] else "approve",
                    "reviewer": co.reviewer[i],
                    "decided_at": _ts(co.decided_s[i]),
                }
            )
    payments = [
        {
            "id": k + 1,
            "reference": f"PAY{k + 1:09d}",
            "order_id": int(i) + 1,
            "order_no": co.order_no[i],
            "account_id": int(co.order_customer[i]) + 1,
            "card_id": int(co.order_card[i]) + 1,
            "amount": _money(co.amount_cents[i]),
            "currency": "CNY",
            "status": co.pay_status[k],
            "attempted_at": _ts(co.pay_attempted_s[k]),
        }
        for k, i in enumerate(co.pay_order)
    ]
    messages = [
        {
            "id": k + 1,
            "customer_id": m["customer"] + 1,
            "order_no": m["order_no"],
            "channel": m["channel"],
            "lang": m["lang"],
            "intent": m["intent"],
            "text": m["text"],
            "sent_at": _ts(m["sent_s"]),
        }
        for k, m in enumerate(co.messages)
    ]
    return {
        "customers": customers,
        "accounts": accounts,
        "payment_cards": cards,
        "orders": orders,
        "audit_decisions": decisions,
        "payments": payments,
        "customer_messages": messages,
    }


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url)


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``executemany`` at the driver level with each column's own bind processing.

    Same values as ``conn.execute(table.insert(), rows)``, but it skips SQLAlchemy's per-row
    parameter compilation, which is most of the time for 100k-row tables.
    """
    if not rows:
        return
    dialect = conn.dialect
    keys = [c.key for c in table.c]
    compiled = table.insert().compile(dialect=dialect, column_keys=keys)
    procs = {c.key: c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.c}
    names = list(compiled.positiontup or []) if compiled.positional else keys
    steps = [(name, procs[name]) for name in names]
    sql = str(compiled)
    for start in range(0, len(rows), _BATCH):
        chunk = rows[start : start + _BATCH]
        if compiled.positional:
            params: list[Any] = [
                tuple(proc(row[name]) if proc else row[name] for name, proc in steps) for row in chunk
            ]
        else:
            params = [{name: proc(row[name]) if proc else row[name] for name, proc in steps} for row in chunk]
        conn.exec_driver_sql(sql, params)


def generate_warehouse(
    url: str,
    *,
    orders: int = 20000,
    seed: int = 0,
    label_noise: float = 0.05,
    weights: SignalWeights | None = None,
    as_of: dt.datetime = AS_OF,
) -> WarehouseSummary:
    """Write the demo company to the database at ``url``, replacing the warehouse tables there.

    :param url: any SQLAlchemy URL (normally ``settings.warehouse_url``).
    :param orders: number of orders (at least 10); customers are about a sixth of that.
    :param seed: same seed, same rows.
    :param label_noise: share of audit decisions flipped at random (0 to 0.5).
    :param weights: the reviewers' policy; defaults to :class:`SignalWeights`.
    :param as_of: the warehouse's "now".
    """
    started = time.perf_counter()
    company = build_company(orders, seed=seed, label_noise=label_noise, weights=weights, as_of=as_of)
    rows = _rows(company)
    engine = _engine(url)
    try:
        schema.metadata.drop_all(engine)
        schema.metadata.create_all(engine)
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MiB: random-key index inserts
            for table in schema.ALL_TABLES:
                _bulk_insert(conn, table, rows[table.name])
    finally:
        engine.dispose()
    status = Counter(company.pay_status)
    decided = int(company.decided.sum())
    rejected = int((company.reject & company.decided).sum())
    expired = sum(1 for d in company.card_expires if d < as_of.date())
    summary = WarehouseSummary(
        url=make_url(url).render_as_string(hide_password=True),
        seed=seed,
        label_noise=label_noise,
        as_of=as_of.isoformat(),
        customers=len(company.customer_name),
        cards=len(company.card_brand),
        expired_cards=expired,
        orders=orders,
        approved=decided - rejected,
        rejected=rejected,
        pending=orders - decided,
        payments={s: status.get(s, 0) for s in ("paid", "insufficient_balance", "card_expired")},
        messages=len(company.messages),
        showcase_orders=SHOWCASE_ORDERS,
        seconds=round(time.perf_counter() - started, 3),
        counts={name: len(r) for name, r in rows.items()},
    )
    logger.info(
        "wrote demo warehouse: %s orders, %s customers in %.1fs", orders, summary.customers, summary.seconds
    )
    return summary


def warehouse_digest(url: str) -> str:
    """SHA-256 over every row of every warehouse table, in id order: equal digests, equal data."""
    digest = hashlib.sha256()
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            for table in schema.ALL_TABLES:
                digest.update(f"\x1e{table.name}".encode())
                result = conn.execute(select(table).order_by(table.c.id))
                for part in result.partitions(10000):
                    for row in part:
                        digest.update(repr(tuple(row)).encode())
    finally:
        engine.dispose()
    return digest.hexdigest()
