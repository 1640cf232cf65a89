"""Payment gateways: the :class:`PaymentGateway` interface and the :class:`SandboxGateway`.

A charge carries an idempotency key (the workflow step's ``run:<id>:<step>``). A gateway must
charge at most once per key and answer a replayed key with the original result: that is what
makes a step safe to retry after a crash between "the gateway charged" and "the engine recorded
the step as done".

The sandbox is a bank simulated on the company's warehouse: the order's card and its customer's
account. It returns ``card_expired`` when the card's ``expires_on`` has passed, else
``insufficient_balance`` when the balance is below the amount, else ``paid`` (and debits the
balance). The debit, the warehouse ``payments`` row and a row in its own ledger
(``sandbox_ledger``, UNIQUE on the key) are written in ONE transaction of the warehouse
database, so a charge without its ledger row, or a second charge for one key, cannot exist.

Other gateways plug in through ``settings.payment_gateway = "package.module:factory"``, a callable
that takes the settings and returns a :class:`PaymentGateway`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from gpt2_agent.actions.money import format_amount, to_decimal
from gpt2_agent.actions.warehouse import (
    OrderRecord,
    Warehouse,
    accounts,
    order_query,
    payments,
    record_from_row,
)
from gpt2_agent.config import Settings
from gpt2_agent.store.base import UTCDateTime, utcnow

log = logging.getLogger(__name__)


class PaymentStatus(StrEnum):
    """What a charge ended in."""

    PAID = "paid"  # the amount was taken from the account
    INSUFFICIENT_BALANCE = "insufficient_balance"  # the account holds less than the amount
    CARD_EXPIRED = "card_expired"  # the order's card is past its expiry date


@dataclass(frozen=True)
class ChargeRequest:
    """Charge ``amount`` for order ``order_no``, at most once per ``idempotency_key``."""

    idempotency_key: str
    order_no: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class ChargeResult:
    """A charge's outcome. ``replayed`` is True when the key had been charged before."""

    status: PaymentStatus
    reference: str
    order_no: str
    amount: Decimal
    currency: str
    charged_at: dt.datetime
    card_brand: str | None = None
    card_last4: str | None = None
    reason: str = ""
    replayed: bool = False


class GatewayError(Exception):
    """Base of the gateway errors."""


class PaymentRefused(GatewayError):
    """The gateway refused the request itself (not the payment): nothing was charged. Permanent."""


class GatewayUnavailable(GatewayError):
    """The gateway could not be reached or answered with an error; retrying may help."""


@runtime_checkable
class PaymentGateway(Protocol):
    """Charges orders; at most once per idempotency key."""

    name: str

    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge, or return the result recorded for ``request.idempotency_key``.

        Raises :class:`PaymentRefused` (permanent, nothing charged) or :class:`GatewayUnavailable`.
        """
        ...


# --- the sandbox ---------------------------------------------------------------------------------

sandbox_metadata = MetaData()
"""The sandbox's own table lives in the warehouse database, which has no migrations."""

sandbox_ledger = Table(
    "sandbox_ledger",
    sandbox_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(300), nullable=False, unique=True),
    Column("reference", String(32), nullable=False, unique=True),
    Column("order_no", String(16), nullable=False, index=True),
    Column("account_id", Integer, nullable=False),
    Column("amount", Numeric(14, 2, asdecimal=True), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("balance_after", Numeric(14, 2, asdecimal=True), nullable=True),
    Column("card_brand", String(20), nullable=True),
    Column("card_last4", String(4), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

REASONS = {
    PaymentStatus.PAID: "paid",
    PaymentStatus.INSUFFICIENT_BALANCE: "the account balance does not cover the amount",
    PaymentStatus.CARD_EXPIRED: "the payment card has expired",
}
_ATTEMPTS = 5  # unique-constraint races (same key, next payment id) are retried this often
_ADVISORY_LOCK = 0x5A4D_0001  # PostgreSQL transaction lock serialising sandbox charges


def _reference(key: str) -> str:
    """A stable charge reference per key (so a replay shows the same reference)."""
    return "SBX" + hashlib.sha256(key.encode()).hexdigest()[:20].upper()


class SandboxGateway:
    """The simulated bank over the warehouse's accounts and cards.

    :param warehouse: the warehouse to charge against.
    :param today: the date cards are checked against (default: today in UTC).
    """

    name = "sandbox"

    def __init__(self, warehouse: Warehouse, *, today: Callable[[], dt.date] | None = None) -> None:
        self.warehouse = warehouse
        self.db = warehouse.db
        self.today = today or (lambda: utcnow().date())
        self._ledger_ready = False
        self._lock = threading.Lock()

    def _ensure_ledger(self) -> None:
        # Created on first use, not at start-up: an absent warehouse must stay absent (the demo
        # generates one only where there is none).
        with self._lock:
            if self._ledger_ready:
                return
            try:
                sandbox_metadata.create_all(self.db.engine, checkfirst=True)
            except SQLAlchemyError:
                # Another process created it between the check and the CREATE; fine if it is there now.
                sandbox_metadata.create_all(self.db.engine, checkfirst=True)
            self._ledger_ready = True

    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge once per key; see the module docstring."""
        try:
            self._ensure_ledger()
        except SQLAlchemyError as exc:
            raise GatewayUnavailable(f"sandbox gateway: cannot create its ledger: {exc}") from exc
        for _ in range(_ATTEMPTS):
            try:
                with self.db.write_session() as session:
                    return self._charge(session, request)
            except IntegrityError:
                # A concurrent charge with the same key (or the same next payment id) committed
                # first; the next round finds its ledger row or takes the next id.
                continue
            except DBAPIError as exc:
                raise GatewayUnavailable(f"sandbox gateway: {str(exc.orig).splitlines()[0]}") from exc
        raise GatewayUnavailable(f"sandbox gateway: repeated conflicts charging {request.idempotency_key!r}")

    def _charge(self, session: Session, req: ChargeRequest) -> ChargeResult:
        if not self.db.is_sqlite:
            # One sandbox charge at a time, as SQLite's BEGIN IMMEDIATE already does: the next
            # warehouse payment id is max + 1, and concurrent charges would keep colliding on it.
            session.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK)))
        replay = self._replay(session, req)
        if replay is not None:
            return replay
        row = session.execute(order_query(req.order_no)).first()
        if row is None:
            raise PaymentRefused(f"order {req.order_no} not found")
        order = record_from_row(row)
        if req.currency != order.currency:
            raise PaymentRefused(f"currency {req.currency} does not match the order's {order.currency}")
        if req.amount != order.amount:
            raise PaymentRefused(
                f"amount {format_amount(req.amount)} does not match the order's amount "
                f"{format_amount(order.amount)} {order.currency}"
            )
        balance_query = select(accounts.c.balance).where(accounts.c.id == order.account_id)
        if not self.db.is_sqlite:
            balance_query = balance_query.with_for_update()  # SQLite: BEGIN IMMEDIATE already locks
        balance = to_decimal(session.execute(balance_query).scalar_one())
        status, balance_after = self._decide(order, balance, req.amount)
        if status is PaymentStatus.PAID:
            session.execute(
                update(accounts).where(accounts.c.id == order.account_id).values(balance=balance_after)
            )
        now = utcnow()
        reference = _reference(req.idempotency_key)
        # The warehouse's payments table keeps every attempt (its ids are not autoincrement).
        next_id = (session.execute(select(func.max(payments.c.id))).scalar() or 0) + 1
        session.execute(
            insert(payments).values(
                id=next_id,
                reference=reference,
                order_id=order.order_id,
                order_no=order.order_no,
                account_id=order.account_id,
                card_id=order.card_id,
                amount=req.amount,
                currency=order.currency,
                status=status.value,
                attempted_at=now,
            )
        )
        session.execute(
            insert(sandbox_ledger).values(
                idempotency_key=req.idempotency_key,
                reference=reference,
                order_no=order.order_no,
                account_id=order.account_id,
                amount=req.amount,
                currency=order.currency,
                status=status.value,
                balance_after=balance_after,
                card_brand=order.card_brand,
                card_last4=order.card_last4,
                created_at=now,
            )
        )
        log.info("sandbox charge %s for order %s: %s", reference, order.order_no, status.value)
        return ChargeResult(
            status=status,
            reference=reference,
            order_no=order.order_no,
            amount=req.amount,
            currency=order.currency,
            charged_at=now,
            card_brand=order.card_brand,
            card_last4=order.card_last4,
            reason=REASONS[status],
        )

    def _decide(
        self, order: OrderRecord, balance: Decimal, amount: Decimal
    ) -> tuple[PaymentStatus, Decimal | None]:
        # A card can be charged up to and including its expiry date.
        if order.card_expires_on < self.today():
            return PaymentStatus.CARD_EXPIRED, None
        if balance < amount:
            return PaymentStatus.INSUFFICIENT_BALANCE, None
        return PaymentStatus.PAID, balance - amount

    def _replay(self, session: Session, req: ChargeRequest) -> ChargeResult | None:
        entry = session.execute(
            select(sandbox_ledger).where(sandbox_ledger.c.idempotency_key == req.idempotency_key)
        ).first()
        if entry is None:
            return None
        e = entry._mapping
        still_there = session.execute(
            select(payments.c.id).where(payments.c.reference == e["reference"])
        ).first()
        if still_there is None:
            # The warehouse was regenerated since (its payments are gone, the ledger survived):
            # the old entry describes a charge that no longer exists.
            session.execute(delete(sandbox_ledger).where(sandbox_ledger.c.id == e["id"]))
            return None
        amount = to_decimal(e["amount"])
        if e["order_no"] != req.order_no or amount != req.amount:
            raise PaymentRefused(
                f"idempotency key {req.idempotency_key!r} was used for order {e['order_no']} "
                f"({format_amount(amount)}), not for order {req.order_no} ({format_amount(req.amount)})"
            )
        status = PaymentStatus(e["status"])
        created: Any = e["created_at"]
        return ChargeResult(
            status=status,
            reference=str(e["reference"]),
            order_no=str(e["order_no"]),
            amount=amount,
            currency=str(e["currency"]),
            charged_at=created,
            card_brand=e["card_brand"],
            card_last4=e["card_last4"],
            reason=REASONS[status],
            replayed=True,
        )

    def ledger_entries(self, order_no: str | None = None) -> list[dict[str, Any]]:
        """The ledger's rows (for an order), oldest first: for reconciliation and tests."""
        self._ensure_ledger()
        query = select(sandbox_ledger).order_by(sandbox_ledger.c.id)
        if order_no is not None:
            query = query.where(sandbox_ledger.c.order_no == order_no)
        with self.db.session() as session:
            return [dict(r._mapping) for r in session.execute(query)]


def load_gateway(settings: Settings, warehouse: Warehouse | None = None) -> PaymentGateway:
    """The gateway named by ``settings.payment_gateway``: ``"sandbox"`` or ``"module:factory"``."""
    spec = settings.payment_gateway.strip()
    if spec == "sandbox":
        return SandboxGateway(warehouse or Warehouse(settings.warehouse_url))
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"payment_gateway must be 'sandbox' or 'package.module:factory', not {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"payment_gateway {spec!r} cannot be loaded: {exc}") from None
    gateway = factory(settings)
    if not isinstance(gateway, PaymentGateway):
        raise ValueError(f"payment_gateway {spec!r} did not return a PaymentGateway (got {type(gateway)!r})")
    return gateway
