"""Tables of the demo company's data warehouse (SQLAlchemy Core, own ``MetaData``).

The warehouse is a separate database from the application's (``settings.warehouse_url``), so it
has no Alembic branch: :func:`gpt2_agent.demo.generate_warehouse` drops and recreates these
tables. Readers elsewhere (training connectors, the audit action, the payment gateway) use plain
SQL against the table and column names below, which are therefore a contract:

- ``customers``: who buys (``signup_at`` is also when their account was opened).
- ``accounts``: one per customer; ``balance`` is the current balance in ``currency`` after every
  payment in ``payments`` was applied in ``attempted_at`` order.
- ``payment_cards``: a customer's cards; a card can be charged up to and including ``expires_on``.
- ``orders``: ``order_no`` is the public order number ("66120"); ``id`` grows with ``created_at``,
  so ``ORDER BY id`` is chronological. ``items`` is a JSON array of ``{name, qty, unit_price}``.
- ``audit_decisions``: past human decisions, at most one per order; orders without one are pending.
- ``payments``: one attempt per approved order that reached payment; ``status`` is ``paid``,
  ``insufficient_balance`` or ``card_expired``.
- ``customer_messages``: what customers wrote to support, with the intent it expresses.

Money is ``NUMERIC(14, 2)``: exact on PostgreSQL; SQLite keeps it as REAL, which round-trips every
two-decimal amount below 10^12 exactly, and SQLAlchemy hands it back as ``Decimal``.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

from gpt2_agent.store.base import UTCDateTime

metadata = MetaData()

Money = Numeric(14, 2, asdecimal=True)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("email", String(200), nullable=False, unique=True),
    Column("city", String(50), nullable=False),
    Column("address", String(300), nullable=False),
    Column("signup_at", UTCDateTime, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("balance", Money, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
)

payment_cards = Table(
    "payment_cards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("brand", String(20), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("expires_on", Date, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_no", String(16), nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("card_id", Integer, ForeignKey("payment_cards.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("items", Text, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("shipping_address", String(300), nullable=False),
    Column("billing_address", String(300), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("notes", Text, nullable=False),
    Index("ix_orders_customer_created", "customer_id", "created_at"),
)

audit_decisions = Table(
    "audit_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False, unique=True),
    Column("order_no", String(16), nullable=False, unique=True),
    Column("decision", String(16), nullable=False),  # approve | reject
    Column("reviewer", String(100), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("reference", String(32), nullable=False, unique=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False, index=True),
    Column("order_no", String(16), nullable=False, index=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("card_id", Integer, ForeignKey("payment_cards.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),  # paid | insufficient_balance | card_expired
    Column("attempted_at", UTCDateTime, nullable=False),
)

customer_messages = Table(
    "customer_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("order_no", String(16), nullable=True, index=True),
    Column("channel", String(16), nullable=False),
    Column("lang", String(8), nullable=False),  # zh | en | mixed
    Column("intent", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
)

# Insert order respects the foreign keys; drop order is the reverse.
ALL_TABLES = (customers, accounts, payment_cards, orders, audit_decisions, payments, customer_messages)

__all__ = [
    "ALL_TABLES",
    "accounts",
    "audit_decisions",
    "customer_messages",
    "customers",
    "metadata",
    "orders",
    "payment_cards",
    "payments",
]
