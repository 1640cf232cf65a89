"""Read an order's facts from the company's data warehouse (``settings.warehouse_url``).

The warehouse's tables and columns are a contract (see :mod:`gpt2_agent.demo.schema`); this module
reads them with SQLAlchemy Core so money comes back as :class:`~decimal.Decimal` on SQLite and
PostgreSQL alike. Customer-facing text (notices, receipts) is built from these facts only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import StringConstraints
from sqlalchemy import Date, Integer, Numeric, String, Text, column, select, table
from sqlalchemy.exc import SQLAlchemyError

from gpt2_agent.actions.money import to_decimal
from gpt2_agent.store import Database, create_database
from gpt2_agent.store.base import UTCDateTime
from gpt2_agent.training.data.errors import OrderNotFoundError, SourceReadError

Money = Numeric(14, 2, asdecimal=True)

ORDER_NO_PATTERN = r"^[0-9]{1,12}$"
OrderNo = Annotated[str, StringConstraints(strip_whitespace=True, pattern=ORDER_NO_PATTERN)]
"""A public order number: 1 to 12 digits."""

# Lightweight descriptions of the warehouse tables (only the columns read or written here).
customers = table(
    "customers",
    column("id", Integer),
    column("name", String),
    column("email", String),
    column("city", String),
)
accounts = table(
    "accounts",
    column("id", Integer),
    column("customer_id", Integer),
    column("currency", String),
    column("balance", Money),
)
payment_cards = table(
    "payment_cards",
    column("id", Integer),
    column("customer_id", Integer),
    column("account_id", Integer),
    column("brand", String),
    column("last4", String),
    column("expires_on", Date),
)
orders = table(
    "orders",
    column("id", Integer),
    column("order_no", String),
    column("customer_id", Integer),
    column("card_id", Integer),
    column("amount", Money),
    column("currency", String),
    column("items", Text),
    column("shipping_address", String),
    column("created_at", UTCDateTime),
)
payments = table(
    "payments",
    column("id", Integer),
    column("reference", String),
    column("order_id", Integer),
    column("order_no", String),
    column("account_id", Integer),
    column("card_id", Integer),
    column("amount", Money),
    column("currency", String),
    column("status", String),
    column("attempted_at", UTCDateTime),
)


@dataclass(frozen=True)
class OrderRecord:
    """One order with its customer, card and account, as stored in the warehouse."""

    order_id: int
    order_no: str
    amount: Decimal
    currency: str
    items: list[dict[str, Any]]
    shipping_address: str
    created_at: dt.datetime
    customer_id: int
    customer_name: str
    customer_email: str
    card_id: int
    card_brand: str
    card_last4: str
    card_expires_on: dt.date
    account_id: int

    @property
    def item_lines(self) -> list[str]:
        """``"保温杯 x2 @ 59.00"`` per item line."""
        out = []
        for line in self.items:
            qty = int(line.get("qty", 1))
            price = line.get("unit_price")
            out.append(f"{line.get('name', '?')} x{qty}" + (f" @ {price}" if price is not None else ""))
        return out


ORDER_COLUMNS = (
    orders.c.id.label("order_id"),
    orders.c.order_no,
    orders.c.amount,
    orders.c.currency,
    orders.c["items"],
    orders.c.shipping_address,
    orders.c.created_at,
    customers.c.id.label("customer_id"),
    customers.c.name.label("customer_name"),
    customers.c.email.label("customer_email"),
    payment_cards.c.id.label("card_id"),
    payment_cards.c.brand.label("card_brand"),
    payment_cards.c.last4.label("card_last4"),
    payment_cards.c.expires_on.label("card_expires_on"),
    payment_cards.c.account_id,
)


def order_query(order_no: str) -> Any:
    """SELECT of one order joined with its customer and card."""
    return (
        select(*ORDER_COLUMNS)
        .select_from(
            orders.join(customers, customers.c.id == orders.c.customer_id).join(
                payment_cards, payment_cards.c.id == orders.c.card_id
            )
        )
        .where(orders.c.order_no == order_no)
    )


def record_from_row(row: Any) -> OrderRecord:
    """An :class:`OrderRecord` from a row of :func:`order_query`."""
    m = row._mapping
    expires = m["card_expires_on"]
    if isinstance(expires, str):  # SQLite keeps dates as text
        expires = dt.date.fromisoformat(expires)
    try:
        items = json.loads(m["items"]) if m["items"] else []
    except ValueError:
        items = []
    return OrderRecord(
        order_id=int(m["order_id"]),
        order_no=str(m["order_no"]),
        amount=to_decimal(m["amount"]),
        currency=str(m["currency"]),
        items=items if isinstance(items, list) else [],
        shipping_address=str(m["shipping_address"]),
        created_at=m["created_at"],
        customer_id=int(m["customer_id"]),
        customer_name=str(m["customer_name"]),
        customer_email=str(m["customer_email"]),
        card_id=int(m["card_id"]),
        card_brand=str(m["card_brand"]),
        card_last4=str(m["card_last4"]),
        card_expires_on=expires,
        account_id=int(m["account_id"]),
    )


class Warehouse:
    """Access to the orders of the warehouse at ``url``. Thread-safe; share one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        # create_database gives SQLite WAL, a busy timeout and BEGIN IMMEDIATE for writers.
        self.db: Database = create_database(url)

    def close(self) -> None:
        """Release the connection pool."""
        self.db.dispose()

    def order(self, order_no: str) -> OrderRecord:
        """The order ``order_no``; raises ``OrderNotFoundError`` or ``SourceReadError``."""
        try:
            with self.db.session() as session:
                row = session.execute(order_query(order_no)).first()
        except SQLAlchemyError as exc:
            raise SourceReadError(f"warehouse query failed: {str(exc).splitlines()[0]}") from exc
        if row is None:
            raise OrderNotFoundError(order_no)
        return record_from_row(row)
